/**
 * OCL jobs through the real gateway (POST /jobs, the engine, Postgres) against the OCL simulator over
 * loopback HTTP: exact records as OCL's own text, the export's lastUpdated on the job, no secrets in logs.
 */
import t, { type Test } from 'tap'
import { SANDBOX_OCL_TOKEN, expectedChanges, expectedExport, startOclSimulator } from '../../src/upstreams/ocl/simulator/index.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

async function setup (t: Test) {
  const sim = await startOclSimulator({ exportPolls: 1 })
  t.teardown(() => sim.close())
  const gw = await startGateway(t, { env: { OCL_BASE_URL: sim.url, OCL_TOKEN: SANDBOX_OCL_TOKEN, OCL_EXPORT_POLL_SECONDS: '0.02' } })
  return { sim, gw }
}

const submit = async (gw: TestGateway, resource: string, params: Record<string, unknown>) => {
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'ocl', resource, params }) })
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`)
  return res.json()
}

/** Every record as NDJSON lines: the stored text, unchanged. */
async function ndjson (gw: TestGateway, id: string): Promise<string[]> {
  const res = await gw.request(`/jobs/${id}/results`, { headers: { accept: 'application/x-ndjson' } })
  if (res.status !== 200) throw new Error(`results answered ${res.status}`)
  const lines = (await res.text()).split('\n')
  lines.pop()
  return lines
}

t.test('an export job: exact records in file order, and upstreamInfo.lastUpdated on the job', async t => {
  const { sim, gw } = await setup(t)
  const upstreams = await (await gw.request('/upstreams')).json()
  t.match(JSON.stringify(upstreams), /"name":"ocl"/)

  const job = await submit(gw, 'export', { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL' })
  t.same(job.params, { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', version: 'latest', includeRetired: false }, 'defaults included')
  const done = await waitForJob(gw, job.id)
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  t.same(done.upstreamInfo, { version: 'v2024-01-15', lastUpdated: '2024-01-15T10:00:00', lastUpdatedTimezone: 'America/New_York' })

  const want = expectedExport({}, { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', version: 'v2024-01-15' })
  t.match(done.progress, { records: want.length, pagesDone: 4, pagesTotal: 4, percent: 100 })
  const lines = await ndjson(gw, job.id)
  t.equal(lines.length, want.length)
  t.equal(lines.findIndex((line, i) => line !== want[i]), -1, 'NDJSON: OCL\'s own text, concepts then mappings, in file order')
  const page = await (await gw.request(`/jobs/${job.id}/results?limit=3`)).json()
  t.same(page.data, want.slice(0, 3).map(r => JSON.parse(r)))
  t.equal(page.total, want.length)

  t.match(sim.state.stats, { exportsCreated: 1, downloads: 1, signedWithAuth: 0 })
  const logs = gw.logs.join('\n')
  t.notMatch(logs, /X-Amz-Signature|\/signed\//, 'no signed link in the logs')
  t.notMatch(logs, new RegExp(SANDBOX_OCL_TOKEN), 'no token in the logs')
})

t.test('a changes job, and a failing one with its stable error', async t => {
  const { gw } = await setup(t)
  const params = { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', updatedSince: '2024-06-01', includeRetired: true }
  const done = await waitForJob(gw, (await submit(gw, 'changes', params)).id)
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  const want = expectedChanges({}, { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', sinceMs: Date.parse('2024-06-01T00:00:00Z'), includeRetired: true })
  t.same(await ndjson(gw, done.id), want)

  const failed = await waitForJob(gw, (await submit(gw, 'export', { ownerType: 'orgs', owner: 'MSF', source: 'Drafts' })).id)
  t.equal(failed.status, 'failed')
  t.match(failed.error, { code: 'upstream_not_found' })

  const invalid = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'ocl', resource: 'changes', params: { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL' } }) })
  t.equal(invalid.status, 400)
  t.match(await invalid.json(), { errors: [{ pointer: '/params/updatedSince' }] })
})

t.test('sandbox mode: with no OCL configuration the built-in simulator serves the jobs', async t => {
  const gw = await startGateway(t, { env: { SANDBOX: 'true' } })
  const done = await waitForJob(gw, (await submit(gw, 'export', { ownerType: 'users', owner: 'jdoe', source: 'ClinicTerms' })).id)
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  t.same(await ndjson(gw, done.id), expectedExport({}, { ownerType: 'users', owner: 'jdoe', source: 'ClinicTerms', version: 'v1.0' }))
  t.equal(done.upstreamInfo.version, 'v1.0')
})
