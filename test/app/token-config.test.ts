/** TOKEN_ENCRYPTION_KEY: its validation, when production requires it, and the development key file. */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { ConfigError } from '../../src/domain/errors.js'
import { TokenKey } from '../../src/db/credential-crypto.js'
import { KEY_FILE_NAME, developmentKey, tokenKeySource } from '../../src/db/token-keys.js'

const production = {
  NODE_ENV: 'production', GATEWAY_API_KEYS: `a:${'k'.repeat(32)}`, PUBLIC_BASE_URL: 'https://gateway.example.org', UPSTREAMS: 'drchrono', DRCHRONO_ACCESS_TOKEN: 'access-1',
}
const refresh = { DRCHRONO_REFRESH_TOKEN: 'refresh-1', DRCHRONO_CLIENT_ID: 'client', DRCHRONO_CLIENT_SECRET: 'secret' }
const key = randomBytes(32).toString('base64')

function configError (env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) return err.message
    throw err
  }
  throw new Error('the configuration was accepted')
}

function capture () {
  const lines: string[] = []
  const log = pino({ level: 'debug' }, new Writable({ write (chunk: Buffer, _e, done) { lines.push(chunk.toString()); done() } }))
  return { log, lines }
}

t.test('TOKEN_ENCRYPTION_KEY must be 32 bytes of base64; the error names it and never echoes it', async t => {
  const short = randomBytes(24).toString('base64')
  const message = configError({ TOKEN_ENCRYPTION_KEY: short })
  t.match(message, /TOKEN_ENCRYPTION_KEY: expected 32 random bytes in base64.*decodes to 24 bytes/)
  t.notMatch(message, short)
  t.match(configError({ TOKEN_ENCRYPTION_KEY: 'hunter2!' }), /TOKEN_ENCRYPTION_KEY: .*not base64/)
  t.match(configError({ TOKEN_ENCRYPTION_KEY_PREVIOUS: key }), /TOKEN_ENCRYPTION_KEY_PREVIOUS: set only beside TOKEN_ENCRYPTION_KEY/)
  const config = loadConfig({ TOKEN_ENCRYPTION_KEY: key, TOKEN_ENCRYPTION_KEY_PREVIOUS: randomBytes(32).toString('base64') })
  t.ok(config.TOKEN_ENCRYPTION_KEY instanceof TokenKey)
  t.ok(config.TOKEN_ENCRYPTION_KEY_PREVIOUS instanceof TokenKey)
  t.equal(loadConfig({ TOKEN_ENCRYPTION_KEY: '' }).TOKEN_ENCRYPTION_KEY, undefined, 'empty means unset')
  t.notMatch(JSON.stringify(config), key, 'the parsed configuration never prints the key')
})

t.test('production with refresh credentials refuses to start without TOKEN_ENCRYPTION_KEY, and names it', async t => {
  t.match(configError({ ...production, ...refresh }),
    /TOKEN_ENCRYPTION_KEY: required when NODE_ENV=production and refresh credentials are configured \(DRCHRONO_REFRESH_TOKEN\)/)
  t.ok(loadConfig({ ...production, ...refresh, TOKEN_ENCRYPTION_KEY: key }), 'with the key it starts')
  t.ok(loadConfig(production), 'an access token alone stores nothing: no key needed')
  t.ok(loadConfig({ ...refresh, DRCHRONO_ACCESS_TOKEN: 'access-1' }), 'development generates a key instead')
  t.ok(loadConfig({ ...production, ...refresh, UPSTREAMS: 'cliniko', CLINIKO_API_KEY: 'MS0xLWFiY2RlZg-au1', CLINIKO_USER_AGENT: 'Acme (ops@acme.example)' }),
    'an upstream that is not exposed needs no key')
})

t.test('development: a key is generated once under DATA_DIR (mode 0600), logged by id only, and reused', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'bg-token-key-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const dataDir = join(dir, 'data')
  const first = capture()
  const [a, b] = await Promise.all([developmentKey(dataDir, first.log), developmentKey(dataDir, first.log)])
  t.equal(a.id, b.id, 'two processes racing to create it end with one key')
  const path = join(dataDir, KEY_FILE_NAME)
  t.equal((await stat(path)).mode & 0o777, 0o600)
  const secret = (await readFile(path, 'utf8')).trim()
  t.equal(new TokenKey(Buffer.from(secret, 'base64')).id, a.id)
  t.match(first.lines.join(''), /TOKEN_ENCRYPTION_KEY is not set: generated a key/)
  t.notMatch(first.lines.join(''), secret, 'the key is never logged')

  const again = capture()
  const source = tokenKeySource({ NODE_ENV: 'development', DATA_DIR: dataDir }, again.log)
  t.equal((await source()).current.id, a.id, 'a restart reuses it')
  t.equal(await source(), await source(), 'resolved once')
  t.match(again.lines.join(''), /using the key generated earlier/)
  t.notMatch(again.lines.join(''), secret)

  await writeFile(path, 'short\n')
  await t.rejects(developmentKey(dataDir, capture().log), { code: 'token_key_missing', message: /token-encryption\.key: .*not base64|decodes to/ })
})

t.test('a configured key wins; production without one says which variable to set', async t => {
  const configured = new TokenKey(randomBytes(32))
  const source = tokenKeySource({ NODE_ENV: 'production', DATA_DIR: '/nonexistent', TOKEN_ENCRYPTION_KEY: configured }, capture().log)
  t.equal((await source()).current, configured)
  const missing = tokenKeySource({ NODE_ENV: 'production', DATA_DIR: '/nonexistent' }, capture().log)
  await t.rejects(missing(), { name: 'CredentialStoreError', code: 'token_key_missing', message: /TOKEN_ENCRYPTION_KEY is not set/ })
})
