/**
 * The Clinia adapter under every plausible answer where docs/UPSTREAMS.md says UNCONFIRMED or says nothing: a REJECTED
 * bulk answer under HTTP 400, 200, 409 or 422, and a 429 with or without Retry-After. Adapter against the
 * simulator on loopback; each job ends as documented: exact receipts, or upstream_rejected with readable receipts.
 */
import t, { type Test } from 'tap'
import { cliniaAdapter, type CliniaCheckpoint } from '../../../src/upstreams/clinia/adapter.js'
import {
  REJECTED_STATUSES, SANDBOX_CREDENTIALS, goJson, startCliniaSimulator, type CliniaSimulatorOptions, type CliniaSimulatorState,
} from '../../../src/upstreams/clinia/simulator/index.js'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { fakeJob } from '../../helpers/job-context.js'

async function setup (t: Test, sim: CliniaSimulatorOptions = {}) {
  const simulator = await startCliniaSimulator({ pendingPolls: 1, ...sim })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => {
    await client.close()
    await simulator.close()
  })
  const adapter = cliniaAdapter({ baseUrl: simulator.url, ...SANDBOX_CREDENTIALS, maxOperations: 3, pollInitialMs: 2, pollMaxMs: 10 }, client)
  return { state: simulator.state, adapter }
}

/** A Clinia write job on the engine's side, in memory (test/helpers/job-context.ts), resuming when given a checkpoint and pages. */
function cliniaJob (operations: unknown[], resume: { checkpoint: CliniaCheckpoint, pages: Map<number, readonly string[]> } | null = null) {
  const job = fakeJob<CliniaCheckpoint>('resources', {}, { payload: { operations }, checkpoint: resume?.checkpoint, pages: resume?.pages })
  const statuses = () => job.records().map(r => (JSON.parse(r) as { status: string }).status)
  return { ...job, statuses }
}

const create = (i: number, data: Record<string, unknown> = {}) =>
  ({ action: 'CREATE', create: { id: `p<${i}>&`, type: 'provider', data: { name: `Provider ${i}`, ...data } } })

/** The receipts of every task the simulator ran, as it sent them, with `"index":N,` spliced in. */
const taskReceipts = (state: CliniaSimulatorState): string[] =>
  [...state.tasks.values()].flatMap(task => (task.receipts ?? []).map(r => goJson(r))).map((raw, i) => `{"index":${i},${raw.slice(1)}`)

t.test('the simulator answers REJECTED under the status of its setting, with the same body', async t => {
  for (const status of REJECTED_STATUSES) {
    const simulator = await startCliniaSimulator({ rejectedStatus: status })
    t.teardown(() => simulator.close())
    const res = await fetch(`${simulator.url}/sources/${SANDBOX_CREDENTIALS.sourceKey}/v1/resources/bulk`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-clinia-api-key': SANDBOX_CREDENTIALS.apiKey },
      body: JSON.stringify({ operations: [create(1), create(2, { practiceNumber: 'x' })] }),
    })
    t.equal(res.status, status, `${status}: the status`)
    t.match(await res.json(), { status: 'REJECTED', receipts: [{ status: 'CANCELLED' }, { status: 'FAILURE' }] }, `${status}: the body`)
  }
})

t.test('a REJECTED chunk under every HTTP status: upstream_rejected, its receipts kept, later operations NOT_SENT', async t => {
  for (const status of REJECTED_STATUSES) {
    const { state, adapter } = await setup(t, { rejectedStatus: status })
    const ops = Array.from({ length: 8 }, (_, i) => create(i, i === 4 ? { practiceNumber: 'secret-value' } : {}))
    const job = cliniaJob(ops)
    const err = await adapter.run(job.ctx).catch((e: unknown) => e) as Error
    t.match(err, { name: 'UpstreamError', code: 'upstream_rejected', upstreamStatus: status }, `${status}: upstream_rejected`)
    t.match(err.message, new RegExp(`chunk 2 of 3 was REJECTED by Clinia \\(HTTP ${status}\\)`), `${status}: the message names the chunk and status`)
    t.notMatch(err.message, /secret-value|Provider/, `${status}: no operation data in the message`)
    t.same(job.statuses(), ['SUCCESS', 'SUCCESS', 'SUCCESS', 'CANCELLED', 'FAILURE', 'CANCELLED', 'NOT_SENT', 'NOT_SENT'], `${status}: every receipt`)
    t.same(job.records().slice(0, 3), taskReceipts(state), `${status}: chunk 1's receipts exactly`)
    t.equal(job.records()[3], '{"index":3,"status":"CANCELLED"}', `${status}: the REJECTED receipts as Clinia wrote them`)
    t.same(JSON.parse(job.records()[6] ?? 'null'), { index: 6, status: 'NOT_SENT', action: 'CREATE', targetType: 'RESOURCE', type: 'provider', id: 'p<6>&' })
    t.same([state.stats.submits, state.stats.tasksCreated, state.stats.rejected], [2, 1, 1], `${status}: the third chunk was never sent`)

    // A resumed attempt sends nothing and fails the same way, under the same status.
    const last = job.checkpoints.at(-1) as CliniaCheckpoint
    t.same(last.rejected, { chunk: 2, httpStatus: status }, `${status}: the rejection is checkpointed`)
    const again = cliniaJob(ops, { checkpoint: last, pages: new Map([[1, job.pages.get(1)!], [2, job.pages.get(2)!]]) })
    await t.rejects(adapter.run(again.ctx), { code: 'upstream_rejected', upstreamStatus: status }, `${status}: resumed`)
    t.same(again.records(), job.records(), `${status}: the same receipts on resume`)
    t.equal(state.stats.submits, 2, `${status}: nothing sent on resume`)
  }
})

t.test('more operations than Clinia takes, REJECTED under every HTTP status: every receipt CANCELLED, the rest NOT_SENT', async t => {
  for (const status of REJECTED_STATUSES) {
    const { state, adapter } = await setup(t, { rejectedStatus: status, maxOperations: 2 })
    const job = cliniaJob(Array.from({ length: 4 }, (_, i) => create(i)))
    await t.rejects(adapter.run(job.ctx), { code: 'upstream_rejected', upstreamStatus: status }, `${status}: upstream_rejected`)
    t.same(job.statuses(), ['CANCELLED', 'CANCELLED', 'CANCELLED', 'NOT_SENT'], `${status}: receipts`)
    t.equal(state.stats.tasksCreated, 0)
  }
})

t.test('429s with and without Retry-After, on submit and on poll: the job completes with exact receipts', async t => {
  for (const seconds of [0, null]) {
    const { state, adapter } = await setup(t)
    state.failNext(2, 429, 'submit', seconds)
    state.failNext(2, 429, 'poll', seconds)
    const ops = Array.from({ length: 5 }, (_, i) => create(i))
    const job = cliniaJob(ops)
    await adapter.run(job.ctx)
    const name = seconds === null ? 'no Retry-After' : `Retry-After: ${seconds}`
    t.same(job.statuses(), ['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS'], `${name}: every operation applied`)
    t.same(job.records(), taskReceipts(state), `${name}: exact receipts`)
    t.same([state.stats.throttled, state.stats.tasksCreated], [4, 2], `${name}: four 429s, each chunk accepted once`)
  }
})
