/** The Clinia adapter against refusals, faults and answers it cannot use: each ends with a stable code. */
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { cliniaAdapter, type CliniaSettings } from '../../../src/upstreams/clinia/adapter.js'
import { SANDBOX_CREDENTIALS, startCliniaSimulator, type CliniaSimulatorOptions } from '../../../src/upstreams/clinia/simulator/index.js'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { fakeJob } from '../../helpers/job-context.js'

async function setup (t: Test, sim: CliniaSimulatorOptions = {}, settings: Partial<CliniaSettings> = {}) {
  const simulator = await startCliniaSimulator({ pendingPolls: 1, ...sim })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => {
    await client.close()
    await simulator.close()
  })
  const adapter = cliniaAdapter({
    baseUrl: simulator.url, ...SANDBOX_CREDENTIALS, maxOperations: 2, pollInitialMs: 2, pollMaxMs: 10, ...settings,
  }, client)
  return { state: simulator.state, adapter, client }
}

/** A write job on the engine's side, in memory (test/helpers/job-context.ts): enough to run it and see what it stored. */
const job = (operations: unknown[]) => fakeJob('resources', {}, { payload: { operations } })

const ops = (n: number) => Array.from({ length: n }, (_, i) => ({ action: 'UPSERT', upsert: { id: `p${i}`, type: 'provider', data: { name: `P ${i}` } } }))

t.test('a refused key is upstream_unauthorized; an unknown source is upstream_not_found; neither leaks the key', async t => {
  const wrongKey = await setup(t, {}, { apiKey: 'key-clinia-does-not-know' })
  const err = await wrongKey.adapter.run(job(ops(1)).ctx).catch((e: unknown) => e) as Error
  t.match(err, { code: 'upstream_unauthorized', upstreamStatus: 401 })
  t.notMatch(err.message, /key-clinia-does-not-know/)

  const wrongSource = await setup(t, {}, { sourceKey: 'elsewhere' })
  await t.rejects(wrongSource.adapter.run(job(ops(1)).ctx), { code: 'upstream_not_found', upstreamStatus: 404 })
})

t.test('429 and 503 on submit are retried; a 500 is not (the chunk may have been accepted)', async t => {
  const { state, adapter } = await setup(t)
  state.failNext(1, 429, 'submit')
  state.failNext(2, 503, 'submit')
  state.failNext(2, 502, 'poll')
  const done = job(ops(3))
  await adapter.run(done.ctx)
  t.same([state.stats.throttled, state.stats.serverErrors, state.stats.tasksCreated], [1, 4, 2])
  t.equal(state.postsOf(ops(3).slice(0, 2)), 1, 'chunk 1 reached Clinia once')
  t.equal([...done.pages.values()].flat().length, 3)

  state.reset()
  state.failNext(1, 500, 'submit')
  const err = await adapter.run(job(ops(3)).ctx).catch((e: unknown) => e) as Error
  t.match(err, { code: 'upstream_failed', upstreamStatus: 500 })
  t.match(err.message, /not sent again/)
  t.same([state.stats.serverErrors, state.stats.submits], [1, 0], 'one attempt, not repeated')
})

t.test('a task pending past the timeout fails with upstream_timeout', async t => {
  const { adapter } = await setup(t, { pendingPolls: 1_000_000 }, { taskTimeoutMs: 50 })
  await t.rejects(adapter.run(job(ops(1)).ctx), { code: 'upstream_timeout' })
})

t.test('cancel while a task is pending stops polling at once', async t => {
  const { state, adapter } = await setup(t, { pendingPolls: 1_000_000 })
  const j = job(ops(1))
  const run = adapter.run(j.ctx)
  while (state.stats.polls < 2) await new Promise(resolve => setTimeout(resolve, 5))
  const reason = new Error('cancelled by the client')
  j.controller.abort(reason)
  await t.rejects(run, reason)
  const polls = state.stats.polls
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(state.stats.polls, polls, 'no poll after the abort')
})

/** A fake Clinia answering every submit with `accepted` and every status read with the next of `reads`. */
async function oddClinia (t: Test, accepted: unknown, reads: Array<{ status: number, body: string }>) {
  const app = Fastify({ logger: false })
  const seen: string[] = []
  app.post('/sources/:s/v1/resources/bulk', async (_req, reply) => reply.code(202).send(accepted))
  app.get('/sources/:s/v1/resources/bulk/:id', async (req, reply) => {
    seen.push(req.url)
    const next = reads.length > 1 ? reads.shift()! : reads[0]!
    return reply.code(next.status).type('application/json').send(next.body)
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => { await client.close(); await app.close() })
  const { port } = app.server.address() as { port: number }
  const adapter = cliniaAdapter({ baseUrl: `http://127.0.0.1:${port}`, apiKey: 'k', sourceKey: 's', maxOperations: 10, pollInitialMs: 1, pollMaxMs: 2 }, client)
  return { adapter, seen }
}

const ok = (n: number) => Array.from({ length: n }, (_, i) => `{"id":"x${i}","status":"SUCCESS"}`).join(',')

t.test('answers the adapter cannot use fail with invalid_upstream_response or upstream_not_found', async t => {
  const accepted = { status: 'ACCEPTED', taskId: 'bk_1', bulkId: '1' }
  const cases: Array<[string, unknown, Array<{ status: number, body: string }>, string, RegExp]> = [
    ['fewer receipts than operations', accepted, [{ status: 200, body: `{"status":"SUCCESS","receipts":[${ok(1)}]}` }], 'invalid_upstream_response', /1 receipts for 2 operations/],
    ['no receipts in a finished task', accepted, [{ status: 200, body: '{"status":"FAILURE"}' }], 'invalid_upstream_response', /no "receipts" array/],
    ['an unknown task status', accepted, [{ status: 200, body: '{"status":"RUNNING"}' }], 'invalid_upstream_response', /not one of PENDING/],
    ['receipts with their own index', accepted, [{ status: 200, body: '{"status":"SUCCESS","receipts":[{"index":0,"status":"SUCCESS"},{"index":1,"status":"SUCCESS"}]}' }], 'invalid_upstream_response', /own "index"/],
    ['a receipt that is not an object', accepted, [{ status: 200, body: '{"status":"SUCCESS","receipts":["SUCCESS","SUCCESS"]}' }], 'invalid_upstream_response', /receipt 0 has no "status"/],
    ['ACCEPTED without a task id', { status: 'ACCEPTED' }, [], 'invalid_upstream_response', /without a usable "taskId"/],
    ['a task Clinia no longer knows', accepted, [{ status: 404, body: '{"code":404,"message":"not found"}' }], 'upstream_not_found', /no longer knows task bk_1/],
  ]
  for (const [name, answer, reads, code, message] of cases) {
    const { adapter } = await oddClinia(t, answer, reads)
    const j = job(ops(2))
    await t.rejects(adapter.run(j.ctx), { code, message }, name)
    t.equal(j.pages.size, 0, `${name}: nothing stored`)
  }
})

t.test('a finished task with a receipt still PENDING is polled on; an old API\'s bare bulkId is used', async t => {
  const { adapter, seen } = await oddClinia(t, { status: 'ACCEPTED', bulkId: 'legacy-1' }, [
    { status: 200, body: '{"status":"PENDING"}' },
    { status: 200, body: '{"status":"FAILURE","receipts":[{"status":"PENDING"},{"status":"SUCCESS"}]}' },
    { status: 200, body: '{"receipts":[{"error":{"code":409,"type":"ALREADY_EXISTS"},"status":"FAILURE"}, { "status" : "SUCCESS" }],"status":"FAILURE"}' },
  ])
  const j = job(ops(2))
  await adapter.run(j.ctx)
  t.same(j.pages.get(1), ['{"index":0,"error":{"code":409,"type":"ALREADY_EXISTS"},"status":"FAILURE"}', '{"index":1, "status" : "SUCCESS" }'], 'spliced into Clinia\'s own text, spacing and all')
  t.equal(seen.length, 3)
  t.ok(seen.every(u => u === '/sources/s/v1/resources/bulk/legacy-1?withReceipts=true'))
})
