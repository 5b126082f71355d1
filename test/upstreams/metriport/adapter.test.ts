/** The Metriport adapter against its simulator, with the engine's side faked in memory. */
import t, { type Test } from 'tap'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { metriportAdapter, type MetriportCheckpoint } from '../../../src/upstreams/metriport/adapter.js'
import { SANDBOX_CREDENTIALS, type MetriportSettings } from '../../../src/upstreams/metriport/env.js'
import { SANDBOX_PATIENT_IDS, startMetriportSimulator, type MetriportSimulatorOptions } from '../../../src/upstreams/metriport/simulator/index.js'
import { runKey } from '../../../src/upstreams/metriport/webhook.js'
import { UpstreamError } from '../../../src/domain/errors.js'
import type { Parked } from '../../../src/contract/adapter.js'
import { fakeJob } from '../../helpers/job-context.js'

const patientId = SANDBOX_PATIENT_IDS[0] as string

async function setup (t: Test, sim: MetriportSimulatorOptions = {}, settings: Partial<MetriportSettings> = {}) {
  // No webhook URL and no delay: these tests look at the start only; webhooks are the e2e tests' business.
  const simulator = await startMetriportSimulator({ delayMs: 'never', ...sim })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => {
    await client.close()
    await simulator.close()
  })
  const adapter = metriportAdapter({ baseUrl: simulator.url, ...SANDBOX_CREDENTIALS, webhookTimeoutSeconds: 120, ...settings }, client)
  return { state: simulator.state, adapter }
}

/**
 * A Metriport job on the engine's side, in memory (test/helpers/job-context.ts): what the adapter saved (each
 * `setUpstreamInfo` in `infos`), and the park it asked for, which answers `parked`. Records come only by webhook.
 */
function metriportJob (params: Record<string, unknown>, checkpoint: MetriportCheckpoint | null = null) {
  const parked: Parked = { parked: true }
  const infos: Array<Record<string, unknown>> = []
  const job = fakeJob<MetriportCheckpoint>('document-download-urls', params, {
    checkpoint,
    refusePages: 'Metriport jobs store records only through the webhook',
    setUpstreamInfo: info => { infos.push(info) },
    park: () => parked,
  })
  return { ...job, infos, parked }
}

async function failure (t: Test, run: Promise<unknown>): Promise<UpstreamError> {
  const err = await run.then(() => null, (e: unknown) => e)
  t.ok(err instanceof UpstreamError, 'fails with an UpstreamError')
  return err as UpstreamError
}

t.test('starts the run, saves its requestId, and parks under it and the patient', async t => {
  const { state, adapter } = await setup(t)
  const job = metriportJob({ patientId, metadata: { batch: 'b1' } })
  const outcome = await adapter.run(job.ctx)
  t.equal(outcome, job.parked, 'run returns what park returned')
  const run = [...state.runs.values()][0]
  if (run === undefined) throw new Error('no run started')
  t.same(job.calls, ['saveCheckpoint', 'setUpstreamInfo', 'park'], 'the requestId is saved before the job parks')
  t.same(job.checkpoints, [{ requestId: run.requestId }])
  t.same(job.infos, [{ requestId: run.requestId }])
  t.same(job.parks, [{ key: runKey(run.requestId, patientId), timeoutSeconds: 120 }], 'only a message naming both finishes the job')
  t.same(run.metadata, { batch: 'b1' }, 'metadata reaches Metriport')
  t.equal(run.patientId, patientId)
})

t.test('a resumed job POSTs again: the same requestId while processing, a new one after the run ended', async t => {
  const { state, adapter } = await setup(t)
  const first = metriportJob({ patientId })
  await adapter.run(first.ctx)
  const requestId = (first.checkpoints[0] as MetriportCheckpoint).requestId

  const resumed = metriportJob({ patientId }, { requestId })
  await adapter.run(resumed.ctx)
  t.same(resumed.parks, [{ key: runKey(requestId, patientId), timeoutSeconds: 120 }], 'sticky requestId')
  t.equal(state.stats.starts, 1)
  t.equal(state.stats.stickyStarts, 1)

  await state.deliverNow(requestId) // the run ends (its webhook goes nowhere: no URL here)
  const late = metriportJob({ patientId }, { requestId })
  await adapter.run(late.ctx)
  const next = (late.checkpoints[0] as MetriportCheckpoint | undefined)?.requestId
  t.ok(next !== undefined && next !== requestId, 'a new run is waited for')
  t.same(late.parks, [{ key: runKey(next as string, patientId), timeoutSeconds: 120 }])
  t.equal(state.stats.starts, 2)
})

t.test('an unknown patient is upstream_not_found; nothing is saved or parked', async t => {
  const { adapter } = await setup(t)
  const job = metriportJob({ patientId: 'no-such-patient' })
  const err = await failure(t, adapter.run(job.ctx))
  t.equal(err.code, 'upstream_not_found')
  t.equal(err.upstreamStatus, 404)
  t.same(job.calls, [])
})

t.test('a wrong API key is upstream_unauthorized', async t => {
  const { adapter } = await setup(t, {}, { apiKey: 'not-the-key' })
  const err = await failure(t, adapter.run(metriportJob({ patientId }).ctx))
  t.equal(err.code, 'upstream_unauthorized')
  t.equal(err.upstreamStatus, 403, 'API Gateway answers 403 for a bad key')
})

t.test('a start answered "failed" is upstream_failed', async t => {
  const { adapter } = await setup(t, { failStartPatients: [patientId] })
  const job = metriportJob({ patientId })
  const err = await failure(t, adapter.run(job.ctx))
  t.equal(err.code, 'upstream_failed')
  t.same(job.calls, [], 'not parked')
})

t.test('params the adapter cannot read are an internal error, never sent', async t => {
  const { state, adapter } = await setup(t)
  const err = await failure(t, adapter.run(metriportJob({ patientId, extra: 1 }).ctx))
  t.equal(err.code, 'internal_error')
  t.equal(state.stats.starts + state.stats.badRequests, 0)
})
