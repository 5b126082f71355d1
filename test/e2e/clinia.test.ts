/**
 * Clinia write jobs through the real gateway against the simulator over loopback HTTP: exact receipts in
 * operation order, succeeded/failed progress, a REJECTED chunk whose receipts stay readable, and validation.
 */
import t, { type Test } from 'tap'
import { clinia } from '../../src/upstreams/clinia/definition.js'
import { goJson, startCliniaSimulator, type CliniaSimulatorState } from '../../src/upstreams/clinia/simulator/index.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const API_KEY = 'clinia-e2e-key-0123456789'

async function setup (t: Test) {
  const sim = await startCliniaSimulator({ apiKey: API_KEY, sourceKey: 'ehr-prod', pendingPolls: 1 })
  t.teardown(() => sim.close())
  const gw = await startGateway(t, {
    env: {
      CLINIA_BASE_URL: sim.url,
      CLINIA_API_KEY: API_KEY,
      CLINIA_SOURCE_KEY: 'ehr-prod',
      CLINIA_MAX_OPERATIONS: '3',
      CLINIA_POLL_INITIAL_MS: '5',
      CLINIA_POLL_MAX_MS: '20',
    },
  })
  return { sim, gw }
}

const submit = (gw: TestGateway, body: Record<string, unknown>) =>
  gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'clinia', resource: 'resources', ...body }) })

/** Every task's receipts exactly as the simulator sent them, each with `"index":N,` spliced in. */
const receiptTexts = (state: CliniaSimulatorState): string[] =>
  [...state.tasks.values()].flatMap(task => (task.receipts ?? []).map(r => goJson(r))).map((raw, i) => `{"index":${i},${raw.slice(1)}`)

const provider = (id: string, data: Record<string, unknown> = {}) =>
  ({ action: 'CREATE', create: { id, type: 'provider', data: { name: 'Dr. Confidential', specialities: ['Pharmacist'], ...data } } })

t.test('a write job: exact receipts in order with their index, succeeded and failed counted', async t => {
  const { sim, gw } = await setup(t)
  const operations = [
    provider('p<1>'), provider('p2'), { action: 'UPSERT', upsert: { id: 'o1', type: 'office', data: { name: 'Main' } } },
    provider('p<1>'), // chunk 2: already exists
    { action: 'DELETE', delete: { id: 'p2', type: 'provider' } },
    { action: 'DELETE', delete: { id: 'p2', type: 'provider' } }, // already deleted
    provider('p7'),
  ]
  const res = await submit(gw, { operations })
  t.equal(res.status, 202)
  const done = await waitForJob(gw, (await res.json()).id)
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  t.same(done.progress, { records: 7, pagesDone: 3, pagesTotal: 3, percent: 100, succeeded: 5, failed: 2 })
  t.same(done.upstreamInfo, { taskIds: [...sim.state.tasks.keys()] })
  t.equal(sim.state.stats.tasksCreated, 3)

  const expected = receiptTexts(sim.state)
  const page = await (await gw.request(`/jobs/${done.id}/results`)).json()
  t.same(page.data, expected.map(r => JSON.parse(r)), 'results: Clinia\'s receipts in operation order')
  t.same(page.data.map((r: { index: number, status: string }) => [r.index, r.status]),
    [[0, 'SUCCESS'], [1, 'SUCCESS'], [2, 'SUCCESS'], [3, 'FAILURE'], [4, 'SUCCESS'], [5, 'FAILURE'], [6, 'SUCCESS']])
  t.match(page.data[3], { id: 'p<1>', error: { type: 'ALREADY_EXISTS' } })
  const ndjson = await (await gw.request(`/jobs/${done.id}/results`, { headers: { accept: 'application/x-ndjson' } })).text()
  t.equal(ndjson, expected.map(r => `${r}\n`).join(''), 'NDJSON: the exact receipt texts (Clinia\'s \\u003c escapes kept)')

  const logs = gw.logs.join('')
  t.notMatch(logs, API_KEY, 'the API key is never logged')
  t.notMatch(logs, 'Dr. Confidential', 'operation data is never logged')
})

t.test('a REJECTED chunk fails the job with upstream_rejected; its receipts and NOT_SENT ones stay readable', async t => {
  const { sim, gw } = await setup(t)
  const operations = [
    provider('a'), provider('b'), provider('c'),
    provider('d'), provider('e', { practiceNumber: 'not a number' }), provider('f'),
    provider('g'), { action: 'DELETE', delete: { id: 'a', type: 'provider' } },
  ]
  const res = await submit(gw, { params: {}, operations })
  t.equal(res.status, 202)
  const failed = await waitForJob(gw, (await res.json()).id)
  t.equal(failed.status, 'failed')
  t.match(failed.error, { code: 'upstream_rejected', upstreamStatus: 400, message: /chunk 2 of 3 was REJECTED/ })
  t.notMatch(failed.error.message, /not a number|Confidential/)
  t.match(failed.progress, { pagesDone: 2, pagesTotal: 3, succeeded: 3, failed: 3, records: 8 })

  const results = await gw.request(`/jobs/${failed.id}/results`)
  t.equal(results.status, 200, 'a failed write job with receipts has readable results')
  const { data, total } = await results.json()
  t.equal(total, 8)
  t.same(data.map((r: { index: number, status: string }) => [r.index, r.status]), [
    [0, 'SUCCESS'], [1, 'SUCCESS'], [2, 'SUCCESS'], [3, 'CANCELLED'], [4, 'FAILURE'], [5, 'CANCELLED'], [6, 'NOT_SENT'], [7, 'NOT_SENT'],
  ])
  t.same(data[7], { index: 7, status: 'NOT_SENT', action: 'DELETE', targetType: 'RESOURCE', type: 'provider', id: 'a' })
  t.equal(sim.state.postsOf(operations.slice(6)), 0, 'the last chunk never reached Clinia')
  t.same([sim.state.stats.submits, sim.state.stats.tasksCreated], [2, 1])
  t.ok(sim.state.resources.has('provider/a'), 'the DELETE that was not sent did not happen')
})

t.test('a malformed operation is a 400 problem pointing at the field; nothing is queued', async t => {
  const { sim, gw } = await setup(t)
  const res = await submit(gw, { operations: [provider('a'), provider('b'), provider('c'), { action: 'CREATE', create: { data: {} } }] })
  t.equal(res.status, 400)
  t.match(res.headers.get('content-type'), /^application\/problem\+json/)
  const problem = await res.json()
  t.match(problem, { status: 400, errors: [{ in: 'body', pointer: '/operations/3/create/type' }] })
  t.equal(problem.errors.length, 1)

  const empty = await (await submit(gw, { operations: [] })).json()
  t.match(empty.errors, [{ pointer: '/operations', detail: /at least one operation/ }])
  const unknownParam = await (await submit(gw, { params: { dryRun: true }, operations: [provider('a')] })).json()
  t.match(unknownParam.errors, [{ pointer: '/params' }])
  t.equal(sim.state.stats.submits, 0)
  t.equal((await (await gw.request('/jobs?upstream=clinia')).json()).data.length, 0)
})

t.test('the OpenAPI document carries both resources with their operation examples', async t => {
  const { gw } = await setup(t)
  const doc = await (await gw.request('/openapi.json')).json()
  const text = JSON.stringify(doc)
  t.match(text, 'JobRequest_clinia_resources')
  t.match(text, 'JobRequest_clinia_relationships')
  t.match(text, '"practiceNumber":1020993')
})

t.test('sandbox mode: both Swagger examples run against the mounted simulator', async t => {
  const gw = await startGateway(t, { env: { SANDBOX: 'true' } })
  const upstreams = await (await gw.request('/upstreams')).json()
  t.match(upstreams.data.find((u: { name: string }) => u.name === 'clinia'), { kind: 'write', mode: 'sandbox' })
  for (const [resource, spec] of Object.entries(clinia.resources)) {
    const res = await submit(gw, { resource, params: spec.example, operations: spec.payload?.example })
    t.equal(res.status, 202, resource)
    const done = await waitForJob(gw, (await res.json()).id)
    t.equal(done.status, 'completed', `${resource}: ${JSON.stringify(done.error)}`)
    t.match(done.progress, { succeeded: 1, failed: 0 })
    const { data } = await (await gw.request(`/jobs/${done.id}/results`)).json()
    t.match(data, [{ index: 0, status: 'SUCCESS' }], `${resource}: one SUCCESS receipt`)
  }
})
