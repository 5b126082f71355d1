/** The sealing of stored tokens (AES-256-GCM under TOKEN_ENCRYPTION_KEY): round trip, tampering, wrong key. */
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { TokenKey, decodeTokenKey } from '../../src/db/credential-crypto.js'
import { CredentialStoreError } from '../../src/domain/errors.js'

const plaintext = Buffer.from(JSON.stringify({ accessToken: 'access-PLAIN-1', refreshToken: 'refresh-PLAIN-1' }))
const context = 'upstream_credentials\u0000drchrono'

t.test('a sealed value opens to the same bytes, and never contains them', async t => {
  const key = new TokenKey(randomBytes(32))
  const sealed = key.seal(plaintext, context)
  t.same(key.open(sealed, context, 'it'), plaintext)
  t.equal(sealed.length, 12 + 16 + plaintext.length, 'iv, tag, ciphertext')
  t.equal(sealed.indexOf(Buffer.from('PLAIN')), -1, 'no plaintext in the sealed bytes')
  t.not(key.seal(plaintext, context).subarray(0, 12).toString('hex'), sealed.subarray(0, 12).toString('hex'), 'a fresh IV per write')
})

t.test('any changed byte, or another context, is refused as tampered', async t => {
  const key = new TokenKey(randomBytes(32))
  const sealed = key.seal(plaintext, context)
  for (const at of [0, 11, 12, 27, 28, sealed.length - 1]) {
    const altered = Buffer.from(sealed)
    altered[at] = (altered[at] ?? 0) ^ 0x01
    t.throws(() => key.open(altered, context, 'the stored "drchrono" credential'), { name: 'CredentialStoreError', code: 'credential_tampered' }, `byte ${at}`)
  }
  t.throws(() => key.open(sealed, 'upstream_credentials\u0000cliniko', 'it'), { code: 'credential_tampered' }, 'moved to another name')
  t.throws(() => key.open(sealed.subarray(0, 20), context, 'it'), { code: 'credential_tampered' }, 'truncated')
})

t.test('another key cannot open it: a clear error, never garbage', async t => {
  const sealed = new TokenKey(randomBytes(32)).seal(plaintext, context)
  const other = new TokenKey(randomBytes(32))
  const err = (() => { try { other.open(sealed, context, 'the stored "drchrono" credential'); return null } catch (e) { return e } })()
  t.ok(err instanceof CredentialStoreError)
  t.match((err as Error).message, /the stored "drchrono" credential fails its integrity check under TOKEN_ENCRYPTION_KEY/)
})

t.test('key ids and digests name a key without revealing it', async t => {
  const secret = randomBytes(32)
  const a = new TokenKey(secret)
  const b = new TokenKey(Buffer.from(secret))
  t.equal(a.id, b.id, 'the same key has the same id')
  t.match(a.id, /^[0-9a-f]{16}$/)
  t.not(a.id, new TokenKey(randomBytes(32)).id)
  t.notMatch(a.id, secret.toString('hex').slice(0, 16))
  t.equal(a.digest('seed'), b.digest('seed'), 'digests compare under one key')
  t.not(a.digest('seed'), new TokenKey(randomBytes(32)).digest('seed'), 'and mean nothing under another')
  t.same(JSON.parse(JSON.stringify({ key: a })), { key: { id: a.id } }, 'serialised, a key shows its id only')
  t.notMatch(JSON.stringify(a) + String(a), secret.toString('base64'))
})

t.test('keys are 32 bytes of base64; anything else is refused with the reason', async t => {
  const secret = randomBytes(32)
  t.same(decodeTokenKey(secret.toString('base64')), { key: secret })
  t.same(decodeTokenKey(` ${secret.toString('base64url')}\n`), { key: secret }, 'URL-safe, unpadded, with whitespace')
  t.match(decodeTokenKey(randomBytes(16).toString('base64')), { problem: /32 random bytes.*decodes to 16 bytes/ })
  t.match(decodeTokenKey(randomBytes(33).toString('base64')), { problem: /decodes to 33 bytes/ })
  t.match(decodeTokenKey('not base64 at all!'), { problem: /not base64/ })
  t.throws(() => new TokenKey(randomBytes(31)), /32 bytes/)
})
