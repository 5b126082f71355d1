/**
 * Whole jobs through the real gateway against the DrChrono simulator over loopback HTTP: exact records, cursor
 * paging, NDJSON, expiry, upstream faults, credentials, cancel.
 */
import t from 'tap'
import { expectedRecords } from '../../src/upstreams/drchrono/simulator/index.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'
import { storedCount } from '../helpers/stored-results.js'

const recordCount = { appointments: 2345, patients: 1500 }
const submit = async (gw: TestGateway, params: Record<string, unknown>, resource = 'appointments') => {
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource, params }) })
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`)
  return res.json()
}

async function allPages (gw: TestGateway, id: string, limit: number): Promise<{ records: unknown[], pages: number, total: number }> {
  const records: unknown[] = []
  let cursor: string | null = null
  let pages = 0
  let total = -1
  do {
    const res = await gw.request(`/jobs/${id}/results?limit=${limit}${cursor !== null ? `&cursor=${cursor}` : ''}`)
    if (res.status !== 200) throw new Error(`results answered ${res.status}`)
    const page = await res.json()
    records.push(...page.data)
    cursor = page.nextCursor
    total = page.total
    pages++
  } while (cursor !== null)
  return { records, pages, total }
}

t.test('a job runs to completion with exactly the upstream records; paging and NDJSON agree', async t => {
  const sim = await startDrchrono(t, { recordCount })
  const gw = await startGateway(t, { env: drchronoEnv(sim) })
  const params = { since: '2024-01-01', order_by: 'updated_at', verbose: true }
  const expected = expectedRecords('appointments', { ...params, page_size: 1000 }, { seed: 7, recordCount })
  t.ok(expected.length > 1000, `the job spans several pages (${expected.length} records)`)

  const job = await submit(gw, params)
  const seen: number[] = []
  const done = await waitForJob(gw, job.id, { until: j => { seen.push(j.progress.pagesDone); return j.status !== 'queued' && j.status !== 'running' } })
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  const pages = Math.ceil(expected.length / 1000)
  t.same(done.progress, { records: expected.length, pagesDone: pages, pagesTotal: pages, percent: 100, succeeded: null, failed: null })
  t.same(seen, [...seen].sort((a, b) => a - b), 'progress never goes back')
  t.equal(Date.parse(done.expiresAt) - Date.parse(done.completedAt), 3600_000, 'results live RESULT_TTL_SECONDS')
  for (let p = 1; p <= pages; p++) t.equal(sim.state.postsFor('appointments', p), 1, `page ${p} POSTed once`)
  t.ok(sim.state.pastEndRequests('appointments') <= 4 - pages, 'a page past the end costs its POST at most')

  const big = await allPages(gw, job.id, 1000)
  t.same(big.records, expected, 'pages of 1000: exact records in order')
  t.equal(big.total, expected.length)
  const small = await allPages(gw, job.id, 333)
  t.same(small.records, expected, 'pages of 333 cross page boundaries without loss')
  t.equal(small.pages, Math.ceil(expected.length / 333))

  const ndjson = await gw.request(`/jobs/${job.id}/results`, { headers: { accept: 'application/x-ndjson' } })
  t.equal(ndjson.status, 200)
  t.match(ndjson.headers.get('content-type'), /^application\/x-ndjson/)
  const lines = (await ndjson.text()).split('\n')
  t.equal(lines.pop(), '', 'every record ends with a newline')
  t.same(lines.map(l => JSON.parse(l)), expected, 'NDJSON: exact records in order')

  t.equal((await gw.request(`/jobs/${job.id}/results?cursor=bm9wZQ`)).status, 400, 'a forged cursor is 400')
  t.equal((await gw.request(`/jobs/${job.id}/results?limit=1001`)).status, 400)

  const again = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'appointments', params }) })
  t.equal(again.status, 202, 'after a job finished, an identical body starts a new job')
})

t.test('a list shorter than the page concurrency completes when DrChrono refuses pages past the end on their poll', async t => {
  // The simulator's default, as DRF's paginator would: the POST of a page past the end is accepted (201 + uuid)
  // and only its poll answers 404 "Invalid page.". Here 1500 patients make 2 pages; the gateway asks 4 at first.
  const sim = await startDrchrono(t, { recordCount })
  t.equal(sim.state.pastEndMode, 'poll-404')
  const gw = await startGateway(t, { env: drchronoEnv(sim) })
  const done = await waitForJob(gw, (await submit(gw, {}, 'patients')).id)
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  const expected = expectedRecords('patients', { page_size: 1000 }, { seed: 7, recordCount })
  t.equal(expected.length, 1500)
  t.same((await allPages(gw, done.id, 1000)).records, expected, 'exactly the simulator\'s records')
  t.same(done.progress, { records: 1500, pagesDone: 2, pagesTotal: 2, percent: 100, succeeded: null, failed: null })
  t.same(sim.state.stats.invalidPages, {}, 'no page past the end was polled')
  t.ok(sim.state.pastEndRequests('patients') <= 2, `pages 3 and 4 cost ${sim.state.pastEndRequests('patients')} POSTs`)
  const requests = sim.state.totalRequests('patients')
  t.comment(`${requests} DrChrono requests for 2 pages: ${(requests / 2).toFixed(1)} per page`)
})

t.test('results expire after the TTL: 410 at once, rows deleted by the sweeper, status expired', async t => {
  const sim = await startDrchrono(t, { recordCount })
  const gw = await startGateway(t, { env: { ...drchronoEnv(sim), RESULT_TTL_SECONDS: '2' } })
  const job = await submit(gw, { since: '2024-03-01' }, 'patients')
  const done = await waitForJob(gw, job.id)
  t.equal(done.status, 'completed')
  t.equal((await gw.request(`/jobs/${job.id}/results`)).status, 200)
  t.ok(await storedCount(gw.databaseUrl, job.id) > 0)
  const expired = await waitForJob(gw, job.id, { timeoutMs: 20_000, until: j => j.status === 'expired' })
  t.equal(expired.status, 'expired')
  const gone = await gw.request(`/jobs/${job.id}/results`)
  t.equal(gone.status, 410)
  t.match(await gone.json(), { status: 410, title: 'Gone' })
  for (let i = 0; i < 100 && await storedCount(gw.databaseUrl, job.id) > 0; i++) await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(await storedCount(gw.databaseUrl, job.id), 0, 'the rows are deleted, not just hidden')
})

t.test('a uuid that expires mid-job is re-POSTed; 429s and 5xx are retried; results stay exact', async t => {
  const sim = await startDrchrono(t, { recordCount, faults: { retryAfterSeconds: 1 } })
  const gw = await startGateway(t, { env: drchronoEnv(sim) })
  const params = { since: '2024-02-01' }
  const expected = expectedRecords('appointments', { ...params, page_size: 1000 }, { seed: 7, recordCount })

  sim.state.expireNext(2)
  const expiring = await waitForJob(gw, (await submit(gw, params)).id)
  t.equal(expiring.status, 'completed', JSON.stringify(expiring.error))
  t.equal(sim.state.postsFor('appointments', 2), 2, 'page 2 was POSTed again after its uuid expired')
  t.same((await allPages(gw, expiring.id, 1000)).records, expected)

  sim.state.reset()
  sim.state.throttleNext(3, 1)
  sim.state.failNext(3, 503)
  const faulty = await waitForJob(gw, (await submit(gw, { ...params, verbose: false, order_by: 'scheduled_time' })).id)
  t.equal(faulty.status, 'completed', JSON.stringify(faulty.error))
  t.equal(sim.state.stats.throttled, 3)
  t.equal(sim.state.stats.serverErrors, 3)
  t.same((await allPages(gw, faulty.id, 1000)).records, expected)
})

t.test('401 without refresh credentials fails the job with upstream_unauthorized', async t => {
  const sim = await startDrchrono(t, { recordCount })
  const gw = await startGateway(t, { env: drchronoEnv(sim, { token: 'a-token-drchrono-does-not-know' }) })
  const failed = await waitForJob(gw, (await submit(gw, { since: '2024-02-01' })).id)
  t.equal(failed.status, 'failed')
  t.match(failed.error, { code: 'upstream_unauthorized', upstreamStatus: 401 })
  t.not(failed.expiresAt, null)
  t.equal((await gw.request(`/jobs/${failed.id}/results`)).status, 409, 'a failed job has no results to read')
})

t.test('401 with refresh credentials refreshes the token and completes', async t => {
  const sim = await startDrchrono(t, { recordCount })
  const gw = await startGateway(t, { env: drchronoEnv(sim, { refresh: true }) })
  sim.state.revokeAccessToken()
  const done = await waitForJob(gw, (await submit(gw, { since: '2024-02-01' })).id)
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  t.equal(sim.state.stats.tokenRefreshes, 1, 'one refresh served all pages')
})

t.test('cancel stops a running job and its upstream work', async t => {
  const sim = await startDrchrono(t, { recordCount, inProgressPolls: 1000 })
  const gw = await startGateway(t, { env: drchronoEnv(sim) })
  const job = await submit(gw, { since: '2024-02-01' })
  await waitForJob(gw, job.id, { until: j => j.status === 'running' })
  while (sim.state.stats.gets < 2) await new Promise(resolve => setTimeout(resolve, 20))
  const res = await gw.request(`/jobs/${job.id}`, { method: 'DELETE' })
  t.equal(res.status, 202)
  t.equal((await res.json()).status, 'cancelled')
  await new Promise(resolve => setTimeout(resolve, 300))
  const gets = sim.state.stats.gets
  await new Promise(resolve => setTimeout(resolve, 1500))
  t.equal(sim.state.stats.gets, gets, 'no more polling once cancelled')
  t.equal((await (await gw.request(`/jobs/${job.id}`)).json()).status, 'cancelled')
  t.equal((await gw.request(`/jobs/${job.id}/results`)).status, 410)
})
