import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { ConfigError } from '../../src/domain/errors.js'
import { registry } from '../../src/upstreams/registry.js'

/** A client key as production wants it: 32 characters or more. */
const longKey = (c: string): string => c.repeat(32)
/** A production configuration that passes, one upstream configured: each case below spoils one thing. */
const production: Record<string, string> = {
  NODE_ENV: 'production',
  GATEWAY_API_KEYS: `app:${longKey('k')}`,
  PUBLIC_BASE_URL: 'https://gateway.example.org',
  UPSTREAMS: 'ocl',
  OCL_BASE_URL: 'https://api.openconceptlab.org',
}

function configError (env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) return err.message
    throw err
  }
  return '(accepted)'
}

t.test('defaults with nothing set: sandbox on, open access on loopback only, embedded database', async t => {
  const config = loadConfig({})
  t.match(config, { PORT: 3000, HOST: '127.0.0.1', RESULT_TTL_SECONDS: 3600, SANDBOX: true, GATEWAY_API_KEYS: null, DATA_DIR: './.data', TRUST_PROXY: false })
  t.equal(config.DATABASE_URL, undefined)
})

t.test('a bad value stops start-up with a message naming the variable', async t => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'eighty' }, /PORT/],
    [{ RESULT_TTL_SECONDS: '-5' }, /RESULT_TTL_SECONDS/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    [{ GATEWAY_API_KEYS: 'nocolon' }, /GATEWAY_API_KEYS/],
    [{ GATEWAY_API_KEYS: 'a:12345678,b:12345678' }, /GATEWAY_API_KEYS.*used twice/],
    [{ SANDBOX: 'maybe' }, /SANDBOX/],
    [{ DRCHRONO_BASE_URL: 'not a url' }, /DRCHRONO_BASE_URL/],
    [{ NODE_ENV: 'production' }, /GATEWAY_API_KEYS: required when NODE_ENV=production/],
    [{ ...production, UPSTREAMS: '', OCL_BASE_URL: '' }, /no upstream is configured[\s\S]*drchrono: [\s\S]*clinia: /],
    [{ ...production, UPSTREAMS: 'drchrono' }, /^(?![\s\S]*cliniko)[\s\S]*drchrono: exposed but not configured/],
    [{ UPSTREAMS: 'drchrono,epic' }, /UPSTREAMS: unknown upstream epic/],
    [{ TRUST_PROXY: '2' }, /TRUST_PROXY: a hop count is not supported/],
    [{ UPSTREAMS: ' , ' }, /UPSTREAMS/],
    [{ RATE_LIMIT_MAX: '-1' }, /RATE_LIMIT_MAX/],
    [{ REQUEST_TIMEOUT_SECONDS: '0' }, /REQUEST_TIMEOUT_SECONDS/],
  ]
  for (const [env, message] of cases) {
    t.throws(() => loadConfig(env), ConfigError)
    try { loadConfig(env) } catch (err) { t.match((err as Error).message, message, JSON.stringify(env)) }
  }
  try {
    loadConfig({ PORT: 'x', LOG_LEVEL: 'loud' })
  } catch (err) {
    t.match((err as Error).message, /PORT[\s\S]*LOG_LEVEL/, 'every bad variable is named at once')
  }
})

t.test('keys, proxy and production', async t => {
  const config = loadConfig({
    NODE_ENV: 'production',
    GATEWAY_API_KEYS: `billing:${longKey('b')}, ehr:${longKey('e')}`,
    TRUST_PROXY: '10.0.0.0/8, 127.0.0.1',
    PUBLIC_BASE_URL: 'https://gateway.example.org',
    UPSTREAMS: 'drchrono, cliniko',
    DRCHRONO_ACCESS_TOKEN: 'token-123',
    CLINIKO_API_KEY: 'MS0xLWFiY2RlZg-au1',
    CLINIKO_USER_AGENT: 'Acme (ops@acme.example)',
  })
  t.same(config.UPSTREAMS, ['drchrono', 'cliniko'], 'UPSTREAMS: the exposed upstreams, every one configured')
  t.same([...config.GATEWAY_API_KEYS ?? []], [[longKey('b'), 'billing'], [longKey('e'), 'ehr']])
  t.equal(config.HOST, '0.0.0.0', 'with client keys, every interface by default')
  t.equal(config.SANDBOX, false, 'sandbox is off by default in production')
  t.equal(config.TRUST_PROXY, '10.0.0.0/8, 127.0.0.1')
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).TRUST_PROXY, true)
  t.same(loadConfig({}).UPSTREAMS, registry.upstreams.map(u => u.name), 'outside production, every registered upstream by default')
  t.equal(loadConfig({ NODE_ENV: 'development', GATEWAY_API_KEYS: 'a:12345678', SANDBOX: 'true' }).SANDBOX, true,
    'SANDBOX=true (demos, outside production) starts without upstream configuration')
})

t.test('fail closed: without client keys, open access on loopback only', async t => {
  t.equal(loadConfig({ GATEWAY_API_KEYS: '' }).HOST, '127.0.0.1', 'no keys: HOST defaults to loopback')
  t.equal(loadConfig({ HOST: '::1' }).HOST, '::1', 'another loopback address is fine')
  t.equal(loadConfig({ HOST: '127.0.0.2' }).HOST, '127.0.0.2')
  const open = configError({ HOST: '0.0.0.0' })
  t.match(open, /HOST: 0\.0\.0\.0 is not a loopback address/, 'HOST=0.0.0.0 without keys is refused')
  t.match(open, /GATEWAY_API_KEYS/, 'naming the keys')
  t.match(open, /ALLOW_OPEN_ACCESS=true/, 'and the explicit way out')
  t.match(configError({ HOST: '10.1.2.3', ALLOW_OPEN_ACCESS: 'false' }), /HOST: 10\.1\.2\.3/)
  t.equal(loadConfig({ HOST: '0.0.0.0', ALLOW_OPEN_ACCESS: 'true' }).HOST, '0.0.0.0', 'ALLOW_OPEN_ACCESS=true allows it')
  t.equal(loadConfig({ HOST: '0.0.0.0', GATEWAY_API_KEYS: 'a:12345678' }).HOST, '0.0.0.0', 'with keys, any address')
  t.match(configError({ ALLOW_OPEN_ACCESS: 'sure' }), /ALLOW_OPEN_ACCESS/)
  t.match(configError({ ...production, GATEWAY_API_KEYS: '', ALLOW_OPEN_ACCESS: 'true' }), /GATEWAY_API_KEYS: required when NODE_ENV=production/,
    'production requires keys whatever ALLOW_OPEN_ACCESS says')
})

t.test('fail closed in production: long keys, named proxies, PUBLIC_BASE_URL, no simulators', async t => {
  t.equal(configError(production), '(accepted)', 'the baseline passes')
  const short = configError({ ...production, GATEWAY_API_KEYS: `app:${longKey('k')},ci:${'x'.repeat(31)}` })
  t.match(short, /GATEWAY_API_KEYS: the key of client "ci" is shorter than 32 characters/, 'a 31-character key is refused, by client name')
  t.notMatch(short, 'x'.repeat(31), 'the key itself is never printed')
  t.notMatch(short, /"app"/, 'the long key passes')
  t.equal(configError({ ...production, GATEWAY_API_KEYS: `app:${'k'.repeat(32)}` }), '(accepted)', '32 characters are enough')
  t.equal(configError({ ...production, NODE_ENV: 'development', GATEWAY_API_KEYS: 'app:12345678' }), '(accepted)', 'short keys outside production')

  t.match(configError({ ...production, TRUST_PROXY: 'true' }), /TRUST_PROXY: true is refused when NODE_ENV=production[\s\S]*addresses or CIDRs/)
  t.equal(configError({ ...production, TRUST_PROXY: '10.0.0.0/8' }), '(accepted)', 'named proxies are fine')
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).TRUST_PROXY, true, 'true stays possible outside production')

  const { PUBLIC_BASE_URL: _, ...withoutUrl } = production
  t.match(configError(withoutUrl), /PUBLIC_BASE_URL: required when NODE_ENV=production/)

  t.match(configError({ ...production, SANDBOX: 'true' }), /SANDBOX: true is refused when NODE_ENV=production[\s\S]*NODE_ENV=development/)
  t.equal(configError({ ...production, SANDBOX: 'false' }), '(accepted)')

  const everything = configError({ NODE_ENV: 'production', GATEWAY_API_KEYS: 'a:12345678', TRUST_PROXY: 'true', SANDBOX: 'true' })
  t.match(everything, /GATEWAY_API_KEYS[\s\S]*TRUST_PROXY[\s\S]*PUBLIC_BASE_URL[\s\S]*SANDBOX/, 'every wrong variable in one message')
})

t.test('production without UPSTREAMS serves the configured upstreams, so a newly registered one breaks nothing', async t => {
  const production = {
    NODE_ENV: 'production',
    GATEWAY_API_KEYS: `billing:${longKey('b')}`,
    PUBLIC_BASE_URL: 'https://gateway.example.org',
  }
  t.same(loadConfig({ ...production, DRCHRONO_ACCESS_TOKEN: 'token-123' }).UPSTREAMS, ['drchrono'], 'the one configured')
  t.same(loadConfig({ ...production, UPSTREAMS: '', OCL_TOKEN: 'ocl-token' }).UPSTREAMS, ['ocl'], 'an empty UPSTREAMS is unset')
  t.same(loadConfig({ ...production, DRCHRONO_ACCESS_TOKEN: 'token-123', OCL_TOKEN: 'ocl-token' }).UPSTREAMS, ['drchrono', 'ocl'],
    'every configured one, in the registry\'s order')
  t.match(configError(production), /no upstream is configured/, 'none configured: refused, naming every upstream\'s variables')
  t.match(configError(production), /DRCHRONO_ACCESS_TOKEN/)
  t.match(configError({ ...production, UPSTREAMS: 'drchrono,ocl', DRCHRONO_ACCESS_TOKEN: 'token-123' }), /ocl: exposed but not configured/,
    'an explicit UPSTREAMS still needs each one configured')
  t.same(loadConfig({ ...production, SANDBOX: 'false', NODE_ENV: 'development' }).UPSTREAMS, registry.upstreams.map(u => u.name),
    'outside production every registered upstream, configured or not')
})

t.test('completion callbacks: secrets, origins and the retry schedule are checked at start-up', async t => {
  const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`
  const other = `whsec_${Buffer.alloc(32, 8).toString('base64')}`
  const keys = { GATEWAY_API_KEYS: 'alpha:alpha-key-0123,beta:beta-key-0123' }
  const config = loadConfig({ ...keys, CALLBACK_SECRETS: `alpha:${secret}`, CALLBACK_ALLOWED_ORIGINS: 'https://hooks.example.com:8443,http://127.0.0.1:9000' })
  t.same(config.CALLBACK_ALLOWED_ORIGINS, ['https://hooks.example.com:8443', 'http://127.0.0.1:9000'])
  t.same([...config.CALLBACK_SECRETS.keys()], ['alpha'])
  t.same(config.CALLBACK_RETRY_SCHEDULE_SECONDS, [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400], 'Standard Webhooks\' schedule by default')
  t.equal(config.CALLBACK_TIMEOUT_SECONDS, 10)
  t.same(loadConfig({ CALLBACK_RETRY_SCHEDULE_SECONDS: '0.5, 1,2' }).CALLBACK_RETRY_SCHEDULE_SECONDS, [0.5, 1, 2])
  t.same(loadConfig({ CALLBACK_RETRY_SCHEDULE_SECONDS: '' }).CALLBACK_RETRY_SCHEDULE_SECONDS.length, 9, 'set but empty: the default')
  t.same([...loadConfig({ CALLBACK_SECRETS: `anonymous:${secret}` }).CALLBACK_SECRETS.keys()], ['anonymous'], 'without keys the one client is anonymous')
  const rotating = loadConfig({ ...keys, CALLBACK_SECRETS: `alpha:${other}, beta:${secret} ,alpha:${secret}` }).CALLBACK_SECRETS
  t.same([...rotating.keys()], ['alpha', 'beta'], 'a client listed twice has two secrets (a rotation)')
  t.equal(rotating.get('alpha')!.sign('msg_1', new Date(0), '{}').split(' ').length, 2, 'and signs with both')
  t.equal(rotating.get('beta')!.sign('msg_1', new Date(0), '{}').split(' ').length, 1)

  const printed = JSON.stringify(config) + (await import('node:util')).inspect(config, { depth: 5 })
  t.notOk(printed.includes(secret.slice(6)), 'a printed configuration shows no secret')

  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ ...keys, CALLBACK_SECRETS: 'alpha' }, /CALLBACK_SECRETS: entry 1 is not name:whsec_<base64>/],
    [{ ...keys, CALLBACK_SECRETS: 'alpha:secret-without-prefix' }, /CALLBACK_SECRETS: entry 1 is not name:whsec_/],
    [{ ...keys, CALLBACK_SECRETS: `alpha:whsec_${Buffer.alloc(8).toString('base64')}` }, /CALLBACK_SECRETS: the secret of client "alpha" decodes to 8 bytes/],
    [{ ...keys, CALLBACK_SECRETS: `alpha:${secret},alpha:${secret}` }, /CALLBACK_SECRETS: client "alpha" lists the same secret twice/],
    [{ ...keys, CALLBACK_SECRETS: `alpha:${secret},alpha:${secret.replace(/=+$/, '')}` }, /CALLBACK_SECRETS: client "alpha" lists the same secret twice/],
    [{ ...keys, CALLBACK_SECRETS: `alpha:${secret},alpha:${other},alpha:whsec_${Buffer.alloc(32, 9).toString('base64')}` }, /CALLBACK_SECRETS: client "alpha" has more than 2 secrets \(during a rotation: the new one and the old one\)/],
    [{ ...keys, CALLBACK_SECRETS: `gamma:${secret}` }, /CALLBACK_SECRETS: unknown client gamma; the names are those of GATEWAY_API_KEYS \(alpha, beta\)/],
    [{ CALLBACK_ALLOWED_ORIGINS: 'hooks.example.com' }, /CALLBACK_ALLOWED_ORIGINS: "hooks.example.com" is not an origin/],
    [{ CALLBACK_ALLOWED_ORIGINS: 'https://hooks.example.com/path' }, /CALLBACK_ALLOWED_ORIGINS: .*no path/],
    [{ CALLBACK_RETRY_SCHEDULE_SECONDS: '5,x' }, /CALLBACK_RETRY_SCHEDULE_SECONDS: expected 1 to 30 delays/],
    [{ CALLBACK_RETRY_SCHEDULE_SECONDS: '5,0' }, /CALLBACK_RETRY_SCHEDULE_SECONDS/],
    [{ CALLBACK_RETRY_SCHEDULE_SECONDS: ' ' }, /CALLBACK_RETRY_SCHEDULE_SECONDS/],
    [{ CALLBACK_RETRY_SCHEDULE_SECONDS: '86400,86400', JOB_RETENTION_DAYS: '1' }, /CALLBACK_RETRY_SCHEDULE_SECONDS: the retries span 172800 s, longer than JOB_RETENTION_DAYS/],
    [{ CALLBACK_TIMEOUT_SECONDS: '0' }, /CALLBACK_TIMEOUT_SECONDS/],
  ]
  for (const [env, message] of cases) t.match(configError(env), message, JSON.stringify(env))
  t.notOk(configError({ ...keys, CALLBACK_SECRETS: `alpha:whsec_${Buffer.alloc(8).toString('base64')}` }).includes(Buffer.alloc(8).toString('base64')), 'the message quotes no secret')
})
