/** Metriport's configuration and params: start-up refuses half a configuration; params are strict. */
import t from 'tap'
import { z } from 'zod'
import { loadConfig } from '../../../src/config.js'
import { ConfigError } from '../../../src/domain/errors.js'
import { metriport } from '../../../src/upstreams/metriport/definition.js'
import { metriportParams } from '../../../src/upstreams/metriport/params.js'

t.test('an API key without a webhook key stops start-up, naming the variable', async t => {
  const err = (() => { try { loadConfig({ METRIPORT_API_KEY: 'key' }) } catch (e) { return e } })()
  t.ok(err instanceof ConfigError)
  t.match((err as Error).message, /METRIPORT_WEBHOOK_KEY: required when METRIPORT_API_KEY is set/)
  const config = loadConfig({ METRIPORT_API_KEY: 'key', METRIPORT_WEBHOOK_KEY: 'wh' })
  t.same(metriport.settingsFromEnv(config.upstreamEnv.metriport as never), {
    baseUrl: 'https://api.metriport.com', apiKey: 'key', webhookKey: 'wh', webhookTimeoutSeconds: 3600,
  })
  const none = loadConfig({ METRIPORT_API_KEY: '', METRIPORT_WEBHOOK_TIMEOUT_SECONDS: '5' })
  t.equal(metriport.settingsFromEnv(none.upstreamEnv.metriport as never), null, 'no API key: not configured')
  t.throws(() => loadConfig({ METRIPORT_WEBHOOK_TIMEOUT_SECONDS: '0' }), /METRIPORT_WEBHOOK_TIMEOUT_SECONDS/)
})

t.test('params: patientId required, metadata within Metriport\'s limits, nothing else', async t => {
  const ok = (v: unknown) => metriportParams.safeParse(v).success
  t.ok(ok({ patientId: 'p' }))
  t.ok(ok({ patientId: 'p', metadata: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'v'])) }))
  t.notOk(ok({}), 'patientId is required')
  t.notOk(ok({ patientId: '' }))
  t.notOk(ok({ patientId: 'p', other: 1 }), 'unknown keys are errors')
  t.notOk(ok({ patientId: 'p', metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])) }), '51 pairs')
  t.notOk(ok({ patientId: 'p', metadata: { ['k'.repeat(41)]: 'v' } }), 'a key over 40 characters')
  t.notOk(ok({ patientId: 'p', metadata: { k: 'v'.repeat(501) } }), 'a value over 500 characters')
  t.notOk(ok({ patientId: 'p', metadata: { k: 1 } }), 'values are strings')
  const example = metriport.resources['document-download-urls']?.example
  t.ok(ok(example), 'the OpenAPI example is valid')
  t.match(z.toJSONSchema(metriportParams, { io: 'input', unrepresentable: 'any' }), {
    required: ['patientId'], properties: { metadata: { maxProperties: 50 } },
  })
})
