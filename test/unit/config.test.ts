import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'

t.test('defaults with nothing set: sandbox on, open access, embedded database', async t => {
  const config = loadConfig({})
  t.match(config, { PORT: 3000, HOST: '0.0.0.0', RESULT_TTL_SECONDS: 3600, SANDBOX: true, GATEWAY_API_KEYS: null, DATA_DIR: './.data', TRUST_PROXY: false })
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
    [{ NODE_ENV: 'production', GATEWAY_API_KEYS: 'a:12345678' }, /drchrono: exposed but not configured[\s\S]*clinia: exposed but not configured[\s\S]*UPSTREAMS/],
    [{ NODE_ENV: 'production', GATEWAY_API_KEYS: 'a:12345678', UPSTREAMS: 'drchrono' }, /^(?![\s\S]*cliniko)[\s\S]*drchrono: exposed but not configured/],
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
    NODE_ENV: 'production', GATEWAY_API_KEYS: 'billing:key-0123456789, ehr:key-abcdefghij', TRUST_PROXY: '10.0.0.0/8, 127.0.0.1',
    UPSTREAMS: 'drchrono, cliniko', DRCHRONO_ACCESS_TOKEN: 'token-123', CLINIKO_API_KEY: 'MS0xLWFiY2RlZg-au1', CLINIKO_USER_AGENT: 'Acme (ops@acme.example)',
  })
  t.same(config.UPSTREAMS, ['drchrono', 'cliniko'], 'UPSTREAMS: the exposed upstreams, every one configured')
  t.same([...config.GATEWAY_API_KEYS ?? []], [['key-0123456789', 'billing'], ['key-abcdefghij', 'ehr']])
  t.equal(config.SANDBOX, false, 'sandbox is off by default in production')
  t.equal(config.TRUST_PROXY, '10.0.0.0/8, 127.0.0.1')
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).TRUST_PROXY, true)
  t.same(loadConfig({}).UPSTREAMS, ['drchrono', 'cliniko', 'ocl', 'metriport', 'clinia'], 'every registered upstream by default')
  t.equal(loadConfig({ NODE_ENV: 'production', GATEWAY_API_KEYS: 'a:12345678', SANDBOX: 'true' }).SANDBOX, true,
    'SANDBOX=true (staging) starts without upstream configuration')
})
