/**
 * A completed job reads `expired` from its `expiresAt` on, at once, in every answer that shows it: GET /jobs/{id}
 * (whose view was cached while it was completed), GET /jobs and its status filter, an Idempotency-Key replay,
 * DELETE. The sweeper ran once at start and then waits an hour, so it is not what changes the status: the row
 * still says `completed` when these reads are made. A failed job keeps its status past its `expiresAt` (docs/API.md).
 */
import pg from 'pg'
import t from 'tap'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const submit = async (gw: TestGateway, params: Record<string, unknown>, headers: Record<string, string> = {}) =>
  gw.request('/jobs', { method: 'POST', headers, body: JSON.stringify({ upstream: 'drchrono', resource: 'appointments', params }) })

const list = async (gw: TestGateway, query = ''): Promise<Array<{ id: string, status: string }>> => {
  const res = await gw.request(`/jobs?limit=100${query}`)
  if (res.status !== 200) throw new Error(`GET /jobs${query} answered ${res.status}`)
  return (await res.json()).data
}

t.test('a completed job reads expired from expiresAt on, before the sweeper marks it', async t => {
  const sim = await startDrchrono(t, { recordCount: { appointments: 40 } })
  const gw = await startGateway(t, { env: { ...drchronoEnv(sim), RESULT_TTL_SECONDS: '3', SWEEP_INTERVAL_SECONDS: '3600' } })
  const pool = new pg.Pool({ connectionString: gw.databaseUrl })
  t.teardown(() => pool.end())
  const rowStatus = async (id: string): Promise<string> =>
    (await pool.query<{ status: string }>('SELECT status FROM jobs WHERE id = $1', [id])).rows[0]!.status

  const key = { 'idempotency-key': 'expiry-test' }
  const first = await submit(gw, { since: '2024-02-01' }, key)
  t.equal(first.status, 202)
  const completed = await waitForJob(gw, (await first.json()).id)
  t.equal(completed.status, 'completed', 'completed, within its 3 s of results')
  // Read until this process caches the view (the listener may still be connecting), all before expiresAt.
  while (gw.app.jobs.views.get('alpha', completed.id) === undefined && Date.now() < Date.parse(completed.expiresAt)) {
    await gw.request(`/jobs/${completed.id}`)
  }
  t.ok(gw.app.jobs.views.get('alpha', completed.id) !== undefined, 'its completed view was cached before expiresAt')
  t.same((await list(gw, '&status=completed')).map(j => j.id), [completed.id], 'listed as completed before expiresAt')

  sim.state.revokeAccessToken()
  const failed = await waitForJob(gw, (await (await submit(gw, { since: '2024-03-01' })).json()).id)
  t.match(failed, { status: 'failed', error: { code: 'upstream_unauthorized' } })

  const lastExpiry = Math.max(Date.parse(completed.expiresAt), Date.parse(failed.expiresAt))
  await new Promise(resolve => setTimeout(resolve, Math.max(0, lastExpiry - Date.now() + 100)))
  t.equal(await rowStatus(completed.id), 'completed', 'the sweeper has not marked the row')

  const read = await gw.request(`/jobs/${completed.id}`)
  t.equal(read.status, 200)
  t.equal(read.headers.get('retry-after'), null)
  t.equal(read.headers.get('x-progress'), null)
  t.match(await read.json(), { status: 'expired', expiresAt: completed.expiresAt, completedAt: completed.completedAt, progress: { percent: 100 } },
    'GET /jobs/{id}: expired, the cached completed view is not served')
  t.equal((await gw.request(`/jobs/${completed.id}/results`)).status, 410, 'and its results answer 410 alike')
  t.equal((await (await gw.request(`/jobs/${failed.id}`)).json()).status, 'failed', 'a failed job keeps its status past expiresAt')

  t.same((await list(gw)).map(j => [j.id, j.status]), [[failed.id, 'failed'], [completed.id, 'expired']], 'GET /jobs shows it expired')
  t.same(await list(gw, '&status=completed'), [], '?status=completed no longer lists it')
  t.same((await list(gw, '&status=expired')).map(j => j.id), [completed.id], '?status=expired does')
  t.same((await list(gw, '&status=failed')).map(j => j.id), [failed.id])
  const metrics = await (await gw.request('/metrics', { key: null })).text()
  const gauge = (status: string): string | undefined => new RegExp(`^bulk_gateway_jobs\\{[^}]*status="${status}"[^}]*\\} (\\d+)$`, 'm').exec(metrics)?.[1]
  t.same([gauge('completed'), gauge('expired')], ['0', '1'], 'the jobs gauge of /metrics counts it expired too')

  const replay = await submit(gw, { since: '2024-02-01' }, key)
  t.equal(replay.status, 200)
  t.match(await replay.json(), { id: completed.id, status: 'expired' }, 'an Idempotency-Key replay answers it expired')

  t.equal(await rowStatus(completed.id), 'completed', 'still unmarked: every answer above applied the rule itself')
  const deleted = await gw.request(`/jobs/${completed.id}`, { method: 'DELETE' })
  t.equal(deleted.status, 202)
  t.match(await deleted.json(), { status: 'expired', expiresAt: completed.expiresAt }, 'DELETE leaves an expired job as it was, expiresAt included')
  t.match(await (await gw.request(`/jobs/${completed.id}`)).json(), { status: 'expired', expiresAt: completed.expiresAt })
})
