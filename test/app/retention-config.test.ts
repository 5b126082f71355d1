/** The retention variables: their defaults, their bounds, and the test-only JOB_RETENTION_SECONDS refused in production. */
import t from 'tap'
import { jobRetentionSeconds, loadConfig } from '../../src/config.js'
import { ConfigError } from '../../src/domain/errors.js'

const production = { NODE_ENV: 'production', GATEWAY_API_KEYS: `app:${'k'.repeat(40)}`, PUBLIC_BASE_URL: 'https://gw.example.org', SANDBOX: 'false', UPSTREAMS: 'ocl', OCL_BASE_URL: 'https://api.openconceptlab.org' }

t.test('defaults: jobs kept 30 days, idempotency keys 24 hours', async t => {
  const config = loadConfig({})
  t.equal(config.JOB_RETENTION_DAYS, 30)
  t.equal(config.IDEMPOTENCY_KEY_TTL_HOURS, 24)
  t.equal(jobRetentionSeconds(config), 30 * 86_400)
})

t.test('JOB_RETENTION_SECONDS overrides the days outside production, and is refused in production', async t => {
  t.equal(jobRetentionSeconds(loadConfig({ JOB_RETENTION_DAYS: '7', JOB_RETENTION_SECONDS: '90' })), 90)
  t.equal(jobRetentionSeconds(loadConfig({ ...production, JOB_RETENTION_DAYS: '7' })), 7 * 86_400, 'production honours the days')
  t.throws(() => loadConfig({ ...production, JOB_RETENTION_SECONDS: '90' }), new ConfigError('Invalid configuration:\n  JOB_RETENTION_SECONDS: a test-only knob, refused when NODE_ENV=production; set JOB_RETENTION_DAYS'))
})

t.test('bad values are named', async t => {
  for (const [name, value] of [['JOB_RETENTION_DAYS', '0'], ['JOB_RETENTION_SECONDS', '-5'], ['IDEMPOTENCY_KEY_TTL_HOURS', '1.5'], ['IDEMPOTENCY_KEY_TTL_HOURS', 'never']]) {
    t.throws(() => loadConfig({ [name!]: value }), { name: 'ConfigError', message: new RegExp(`${name}:`) }, `${name}=${value}`)
  }
})
