/**
 * Cliniko jobs through the real gateway (POST /jobs, GET /jobs/:id/results) against the Cliniko simulator over
 * loopback HTTP: exact records, int64 bytes through JSON and NDJSON, list variants, credentials, sandbox mode.
 */
import t, { type Test } from 'tap'
import {
  SANDBOX_API_KEY, expectedRecords, startClinikoSimulator, type ClinikoSimulatorOptions, type RunningClinikoSimulator,
} from '../../src/upstreams/cliniko/simulator/index.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const data = { seed: 7, recordCount: { patients: 430, individual_appointments: 300 } }
const USER_AGENT = 'bulk-gateway tests (tests@example.com)'

async function startCliniko (t: Test, options: ClinikoSimulatorOptions = {}): Promise<RunningClinikoSimulator> {
  const sim = await startClinikoSimulator({ ...data, ...options })
  t.teardown(() => sim.close())
  return sim
}

const clinikoEnv = (sim: RunningClinikoSimulator, key = SANDBOX_API_KEY): Record<string, string> =>
  ({ CLINIKO_BASE_URL: sim.apiUrl, CLINIKO_API_KEY: key, CLINIKO_USER_AGENT: USER_AGENT })

async function submit (gw: TestGateway, resource: string, params: Record<string, unknown>) {
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'cliniko', resource, params }) })
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`)
  return res.json()
}

/** Every record through cursor pages, as the response text holds them (split back out by their parsed count). */
async function allResults (gw: TestGateway, id: string, limit: number): Promise<{ records: unknown[], texts: string[] }> {
  const records: unknown[] = []
  const texts: string[] = []
  let cursor: string | null = null
  do {
    const res = await gw.request(`/jobs/${id}/results?limit=${limit}${cursor !== null ? `&cursor=${cursor}` : ''}`)
    if (res.status !== 200) throw new Error(`results answered ${res.status}`)
    const text = await res.text()
    const page = JSON.parse(text)
    records.push(...page.data)
    texts.push(text)
    cursor = page.nextCursor
  } while (cursor !== null)
  return { records, texts }
}

t.test('a job returns exactly the upstream records; int64 bytes survive JSON and NDJSON', async t => {
  const sim = await startCliniko(t)
  const gw = await startGateway(t, { env: clinikoEnv(sim) })
  const params = { q: ['updated_at:>2023-01-01T00:00:00Z'], per_page: 50 }
  const expected = expectedRecords('patients', params, data)
  const pages = Math.ceil(expected.length / 50)
  t.ok(pages >= 8, `${expected.length} records over ${pages} pages`)

  const job = await submit(gw, 'patients', params)
  const done = await waitForJob(gw, job.id)
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  t.match(done.progress, { records: expected.length, pagesDone: pages, pagesTotal: pages, percent: 100 })
  t.equal(sim.state.totalPages('patients'), pages, 'one request per page')

  const { records, texts } = await allResults(gw, job.id, 120)
  t.same(records, expected.map(r => JSON.parse(r)), 'cursor pages: exact records in order')
  t.ok(texts.join('').includes('"legacy_id":9007199254740993123'), 'the JSON results carry the int64 bytes unchanged')

  const ndjson = await gw.request(`/jobs/${job.id}/results`, { headers: { accept: 'application/x-ndjson' } })
  t.equal(ndjson.status, 200)
  const lines = (await ndjson.text()).split('\n')
  t.equal(lines.pop(), '')
  t.same(lines, expected, 'NDJSON: byte-identical records in order')
  t.ok(lines[0]?.includes('"legacy_id":9007199254740993123'), 'beyond 2^53, as Cliniko wrote it')
  t.notOk(gw.logs.join('').includes(SANDBOX_API_KEY), 'the API key is never logged')

  const variant = await waitForJob(gw, (await submit(gw, 'cancelled_individual_appointments', { sort: 'starts_at:desc' })).id)
  t.equal(variant.status, 'completed', JSON.stringify(variant.error))
  const cancelled = expectedRecords('cancelled_individual_appointments', { sort: 'starts_at:desc' }, data)
  t.ok(cancelled.length > 0)
  t.same((await allResults(gw, variant.id, 1000)).records, cancelled.map(r => JSON.parse(r)), 'a list variant')
})

t.test('params are validated at POST /jobs; Cliniko\'s 422 and 401 fail the job with stable codes', async t => {
  const sim = await startCliniko(t, { shard: 'uk1' })
  const gw = await startGateway(t, { env: clinikoEnv(sim) })
  const bad = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'cliniko', resource: 'patients', params: { q: ['last_name:!~son'], per_page: 101 } }) })
  t.equal(bad.status, 400)
  const problem = await bad.json()
  t.same(problem.errors.map((e: { pointer: string }) => e.pointer).sort(), ['/params/per_page', '/params/q/0'])

  const failed = await waitForJob(gw, (await submit(gw, 'patients', {})).id)
  t.equal(failed.status, 'failed')
  t.match(failed.error, { code: 'upstream_unauthorized', upstreamStatus: 401 })
  t.notMatch(JSON.stringify(failed), SANDBOX_API_KEY, 'the key is not in the job')
  t.notOk(gw.logs.join('').includes(SANDBOX_API_KEY), 'nor in the logs')

  const ukSim = await startCliniko(t, { shard: 'uk1', apiKeys: ['dWtUZXN0S2V5-uk1'] })
  const ukGw = await startGateway(t, { env: clinikoEnv(ukSim, 'dWtUZXN0S2V5-uk1') })
  const rejected = await waitForJob(ukGw, (await submit(ukGw, 'patients', { q: ['favourite_colour:=Blue'] })).id)
  t.match(rejected.error, { code: 'upstream_rejected', upstreamStatus: 422 })
  t.notMatch(rejected.error.message, /Blue|favourite/, 'no filter values in the error')
})

t.test('sandbox mode: a job with no Cliniko configuration runs against the mounted simulator', async t => {
  const gw = await startGateway(t, { env: { SANDBOX: 'true' } })
  const upstreams = (await (await gw.request('/upstreams')).json()).data
  t.equal(upstreams.find((u: { name: string }) => u.name === 'cliniko').mode, 'sandbox')
  const params = { per_page: 5 }
  const done = await waitForJob(gw, (await submit(gw, 'appointment_types', params)).id)
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  const expected = expectedRecords('appointment_types', params)
  t.ok(done.progress.pagesDone > 1, 'several pages, through the simulator\'s links')
  t.same((await allResults(gw, done.id, 1000)).records, expected.map(r => JSON.parse(r)))
})
