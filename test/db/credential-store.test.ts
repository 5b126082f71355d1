/** The PostgreSQL credential store: encrypted rows, one lock for every replica, key changes and tampering. */
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import t, { type Test } from 'tap'
import { TokenKey } from '../../src/db/credential-crypto.js'
import { PgCredentialStore, type TokenKeys } from '../../src/db/credential-store.js'
import { sql, testDatabase } from '../helpers/database.js'

const value = { accessToken: 'access-STORE-MARK-1', refreshToken: 'refresh-STORE-MARK-1', expiresAt: null }

async function pool (t: Test, url: string): Promise<pg.Pool> {
  const p = new pg.Pool({ connectionString: url, max: 4 })
  t.teardown(() => p.end())
  return p
}

const store = (p: pg.Pool, keys: TokenKeys) => new PgCredentialStore(p, async () => keys)

t.test('a credential is stored sealed and read back; a failed update writes nothing', async t => {
  const url = await testDatabase(t)
  const key = new TokenKey(randomBytes(32))
  const s = store(await pool(t, url), { current: key })
  t.equal(await s.read('drchrono'), null)
  t.same(await s.update('drchrono', async current => { t.equal(current, null); return { seed: 'seed-1', value } }), { seed: 'seed-1', value })
  t.same(await s.read('drchrono'), { seed: 'seed-1', value })

  const [row] = await sql<{ seed: string, key_id: string, dump: string, raw: string }>(url,
    'SELECT seed, key_id, t::text AS dump, encode(ciphertext, \'escape\') AS raw FROM upstream_credentials t WHERE name = \'drchrono\'')
  t.equal(row?.key_id, key.id)
  t.equal(row?.seed, key.digest('seed-1'), 'the seed column is a keyed digest, not the seed')
  for (const text of [row?.dump, row?.raw]) t.notMatch(text, /STORE-MARK|seed-1/, 'no plaintext in any column')

  await t.rejects(s.update('drchrono', async () => { throw new Error('the refresh failed') }), /the refresh failed/)
  t.same(await s.read('drchrono'), { seed: 'seed-1', value }, 'rolled back')
  t.same(await s.update('drchrono', async () => undefined), { seed: 'seed-1', value }, 'undefined keeps it')
})

t.test('updates from two replicas never overlap, and none is lost', async t => {
  const url = await testDatabase(t)
  const keys = { current: new TokenKey(randomBytes(32)) }
  const replicas = [store(await pool(t, url), keys), store(await pool(t, url), keys)]
  let inside = 0
  let most = 0
  const bump = (s: PgCredentialStore) => s.update('counter', async current => {
    inside++
    most = Math.max(most, inside)
    await sleep(20) // a refresh takes a while; another replica must wait for it, not run beside it
    inside--
    return { seed: 's', value: { n: Number(current?.value.n ?? 0) + 1 } }
  })
  await Promise.all(Array.from({ length: 10 }, (_, i) => bump(replicas[i % 2] as PgCredentialStore)))
  t.equal(most, 1, 'one update at a time across both pools')
  t.same((await replicas[0]?.read('counter'))?.value, { n: 10 }, 'every update saw the one before it')
})

t.test('another key is detected and explained; the previous key re-encrypts under the new one', async t => {
  const url = await testDatabase(t)
  const p = await pool(t, url)
  const oldKey = new TokenKey(randomBytes(32))
  const newKey = new TokenKey(randomBytes(32))
  await store(p, { current: oldKey }).update('drchrono', async () => ({ seed: 'seed-1', value }))

  const err = await store(p, { current: newKey }).read('drchrono').catch((e: unknown) => e)
  t.match(err, { name: 'CredentialStoreError', code: 'token_key_mismatch' })
  t.match((err as Error).message, new RegExp(`another TOKEN_ENCRYPTION_KEY \\(key id ${oldKey.id}; this gateway has ${newKey.id}\\)`))
  t.match((err as Error).message, /TOKEN_ENCRYPTION_KEY_PREVIOUS/)

  t.same(await store(p, { current: newKey, previous: oldKey }).read('drchrono'), { seed: 'seed-1', value })
  const [row] = await sql<{ key_id: string }>(url, 'SELECT key_id FROM upstream_credentials WHERE name = \'drchrono\'')
  t.equal(row?.key_id, newKey.id, 'sealed again with the current key at first read')
  t.same(await store(p, { current: newKey }).read('drchrono'), { seed: 'seed-1', value }, 'the previous key is no longer needed')
  await t.rejects(store(p, { current: oldKey }).read('drchrono'), { code: 'token_key_mismatch' })
})

t.test('an altered row is refused, not decrypted', async t => {
  const url = await testDatabase(t)
  const s = store(await pool(t, url), { current: new TokenKey(randomBytes(32)) })
  await s.update('drchrono', async () => ({ seed: 'seed-1', value }))
  await s.update('other', async () => ({ seed: 'seed-2', value }))
  await sql(url, 'UPDATE upstream_credentials SET ciphertext = set_byte(ciphertext, 40, get_byte(ciphertext, 40) # 1) WHERE name = \'drchrono\'')
  await t.rejects(s.read('drchrono'), { code: 'credential_tampered', message: /the stored "drchrono" credential fails its integrity check/ })
  await sql(url, 'UPDATE upstream_credentials SET ciphertext = (SELECT ciphertext FROM upstream_credentials WHERE name = \'other\') WHERE name = \'drchrono\'')
  await t.rejects(s.read('drchrono'), { code: 'credential_tampered' }, 'another row\'s ciphertext')
  await t.rejects(s.update('drchrono', async () => ({ seed: 'seed-3', value })), { code: 'credential_tampered' }, 'and it is not overwritten blindly')
})
