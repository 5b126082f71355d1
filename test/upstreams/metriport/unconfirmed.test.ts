/**
 * The Metriport adapter's start under answers its documentation does not describe: a 429 from the API Gateway in
 * front of Metriport, with or without Retry-After, and a start answer carrying unknown fields. Adapter against the
 * simulator on loopback: the job still starts exactly one run and parks under its requestId (and patient).
 */
import t, { type Test } from 'tap'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { metriportAdapter } from '../../../src/upstreams/metriport/adapter.js'
import { SANDBOX_CREDENTIALS } from '../../../src/upstreams/metriport/env.js'
import { SANDBOX_PATIENT_IDS, startMetriportSimulator, type MetriportSimulatorOptions } from '../../../src/upstreams/metriport/simulator/index.js'
import { runKey } from '../../../src/upstreams/metriport/webhook.js'
import type { Parked } from '../../../src/contract/adapter.js'
import { fakeJob } from '../../helpers/job-context.js'

const patientId = SANDBOX_PATIENT_IDS[0] as string

async function setup (t: Test, sim: MetriportSimulatorOptions = {}) {
  const simulator = await startMetriportSimulator({ delayMs: 'never', ...sim })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10, maxRateLimitRetries: 3 })
  t.teardown(async () => {
    await client.close()
    await simulator.close()
  })
  const adapter = metriportAdapter({ baseUrl: simulator.url, ...SANDBOX_CREDENTIALS, webhookTimeoutSeconds: 120 }, client)
  return { simulator, state: simulator.state, adapter }
}

/** A Metriport job on the engine's side, in memory (test/helpers/job-context.ts): the park it asked for answers `parked`. */
function metriportJob () {
  const parked: Parked = { parked: true }
  const job = fakeJob('document-download-urls', { patientId }, {
    refusePages: 'Metriport jobs store records only through the webhook',
    park: () => parked,
  })
  return { ...job, parked }
}

t.test('the simulator\'s 429 is API Gateway\'s: bare JSON, Retry-After only when set', async t => {
  for (const seconds of [null, 2]) {
    const { simulator, state } = await setup(t)
    state.throttleNext(1, seconds)
    const res = await fetch(`${simulator.url}/medical/v1/document/download-url/bulk?patientId=${patientId}`, { method: 'POST', headers: { 'x-api-key': SANDBOX_CREDENTIALS.apiKey } })
    t.equal(res.status, 429)
    t.equal(res.headers.get('retry-after'), seconds === null ? null : '2')
    t.same(await res.json(), { message: 'Too Many Requests' })
    t.equal(state.stats.starts, 0, 'a throttled start starts nothing')
  }
})

t.test('429s on the start, with and without Retry-After: one run starts and the job parks under it', async t => {
  for (const seconds of [null, 0]) {
    const name = seconds === null ? 'no Retry-After' : `Retry-After: ${seconds}`
    const { state, adapter } = await setup(t)
    state.throttleNext(2, seconds)
    const job = metriportJob()
    t.equal(await adapter.run(job.ctx), job.parked, `${name}: parked`)
    const runs = [...state.runs.values()]
    t.equal(runs.length, 1, `${name}: one run`)
    t.same(job.parks, [{ key: runKey(runs[0]?.requestId as string, patientId), timeoutSeconds: 120 }], `${name}: parked under the run's requestId`)
    t.same([state.stats.throttled, state.stats.starts], [2, 1], `${name}: two 429s, then the start`)
  }
  const { state, adapter } = await setup(t)
  state.throttleNext(4)
  await t.rejects(adapter.run(metriportJob().ctx), { code: 'upstream_rate_limited', upstreamStatus: 429 }, 'still 429 after the retries: upstream_rate_limited')
})

t.test('a start answer with unknown fields is read for its status and requestId alone', async t => {
  const { simulator, state, adapter } = await setup(t, { extraFields: true })
  const raw = await fetch(`${simulator.url}/medical/v1/document/download-url/bulk?patientId=${SANDBOX_PATIENT_IDS[1]}`, { method: 'POST', headers: { 'x-api-key': SANDBOX_CREDENTIALS.apiKey } })
  t.match(await raw.json(), { status: 'processing', requestId: String, cxId: String, createdAt: String }, 'the simulator adds them')
  const job = metriportJob()
  t.equal(await adapter.run(job.ctx), job.parked)
  t.same(job.parks.map(p => p.key), [runKey(state.processingRun(patientId)?.requestId as string, patientId)])
})
