/**
 * The retention rules of docs/API.md ("Job lifecycle details"), each against the real gateway and its database: what a
 * finished job keeps from `expiresAt` on (in every read at once, and in the row once swept), when job rows go, how
 * long an Idempotency-Key counts, and that webhook deliveries no job took are bounded too. Rows are written by SQL
 * with the times each rule needs, and the sweeper is run on demand (no workers, no sweeping loop).
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { sql } from '../helpers/database.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { STORED_COUNT, storePage } from '../helpers/stored-results.js'

const MARK = `phi-${randomUUID()}`

interface JobRow { status: string, finishedAgo: string | null, expiresIn: string | null, records?: number }

/** A job of client alpha with something patient-like in every field that may hold it; `expiresIn` e.g. '-1 second'. */
async function insertJob (gw: TestGateway, row: JobRow): Promise<string> {
  const id = randomUUID()
  await sql(gw.databaseUrl, `
    INSERT INTO jobs (id, client_id, upstream, resource, params, payload, request_hash, status, checkpoint, records, pages_done,
      error_code, error_message, upstream_status, upstream_info, wait_reason, started_at, finished_at, expires_at)
    VALUES ($1, 'alpha', 'drchrono', 'patients', $2, $2, $3, $4::"JobStatus", $2, $5, 1,
      CASE WHEN $4::"JobStatus" = 'failed' THEN 'upstream_rejected' END, CASE WHEN $4::"JobStatus" = 'failed' THEN $6 END,
      CASE WHEN $4::"JobStatus" = 'failed' THEN 400 END, $2, $6, now() - interval '3 days',
      now() - $7::interval, now() + $8::interval)`,
  [id, JSON.stringify({ last_name: MARK }), `hash-${MARK}`, row.status, row.records ?? 0, `upstream said ${MARK}`, row.finishedAgo, row.expiresIn])
  if ((row.records ?? 0) > 0) {
    await storePage(gw.databaseUrl, id, 1, Array(row.records).fill(JSON.stringify({ last_name: MARK })))
  }
  return id
}

const count = async (gw: TestGateway, text: string, values: unknown[]): Promise<number> =>
  Number((await sql<{ n: string }>(gw.databaseUrl, text, values))[0]?.n)

t.test('from expiresAt on a finished job keeps only what operations need: at once in every read, then in the row', async t => {
  const gw = await startGateway(t, { startWorkers: false })
  const completed = await insertJob(gw, { status: 'completed', finishedAgo: '1 hour', expiresIn: '-1 second', records: 30 })
  const failed = await insertJob(gw, { status: 'failed', finishedAgo: '1 hour', expiresIn: '-1 second' })
  const cancelled = await insertJob(gw, { status: 'cancelled', finishedAgo: '1 hour', expiresIn: '-1 second', records: 5 })
  const live = await insertJob(gw, { status: 'completed', finishedAgo: '1 second', expiresIn: '1 hour', records: 7 })

  const view = async (id: string) => (await gw.request(`/jobs/${id}`)).json()
  t.match(await view(live), { status: 'completed', params: { last_name: MARK }, upstreamInfo: { last_name: MARK } }, 'a job before expiresAt shows all')
  t.match(await view(completed), { status: 'expired', params: null, upstreamInfo: null, error: null, progress: { records: 30 } },
    'a completed job past expiresAt reads expired and erased')
  t.match(await view(failed), { status: 'failed', params: null, upstreamInfo: null, error: { code: 'upstream_rejected', message: null, upstreamStatus: 400 } },
    'a failed one keeps its code and upstream status, not its message')
  t.match(await view(cancelled), { status: 'cancelled', params: null, upstreamInfo: null })
  const listed = JSON.stringify(await (await gw.request('/jobs?limit=100')).json())
  t.equal(listed.split(MARK).length - 1, 2, 'GET /jobs shows the marker only in the live job (params, upstreamInfo)')
  t.equal(await count(gw, 'SELECT count(*) AS n FROM jobs WHERE params IS NOT NULL', []), 4, 'the rows still hold it: the reads applied the rule')

  const report = await gw.app.sweeper.sweep()
  t.match(report, { erased: 3, expired: 1, rowsDeleted: 35, jobsDeleted: 0 })
  const rows = await sql<Record<string, unknown>>(gw.databaseUrl, `
    SELECT id, status, params, payload, checkpoint, upstream_info, error_message, request_hash, wait_reason, error_code,
      upstream_status, records, erased_at IS NOT NULL AS erased, purge_pending FROM jobs WHERE id <> $1 ORDER BY id`, [live])
  for (const row of rows) {
    t.match(row, {
      params: null,
      payload: null,
      checkpoint: null,
      upstream_info: null,
      error_message: null,
      request_hash: null,
      wait_reason: null,
      erased: true,
      purge_pending: false,
    },
      `job ${row.status}: erased in the row`)
  }
  t.match(rows.find(r => r.id === failed), { error_code: 'upstream_rejected', upstream_status: 400 }, 'code and upstream status stay')
  t.match(rows.find(r => r.id === completed), { status: 'expired', records: 30 }, 'the completed job is expired, its counts stay')
  t.equal(await count(gw, `${STORED_COUNT} WHERE job_id <> $1`, [live]), 0, 'their results are gone')
  t.equal(await count(gw, `${STORED_COUNT} WHERE job_id = $1`, [live]), 7, 'the live job keeps its results')
  t.match(await view(live), { params: { last_name: MARK } }, 'and its params')
  t.match(await gw.app.sweeper.sweep(), { erased: 0, expired: 0, rowsDeleted: 0 }, 'a second sweep finds nothing to do')
})

t.test('job rows go JOB_RETENTION_SECONDS (the test knob for JOB_RETENTION_DAYS) after they finished, results and keys with them', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { JOB_RETENTION_SECONDS: '3600' } })
  const old = await insertJob(gw, { status: 'completed', finishedAgo: '2 hours', expiresIn: '-1 hour', records: 12 })
  const recent = await insertJob(gw, { status: 'failed', finishedAgo: '30 minutes', expiresIn: '-20 minutes' })
  const running = await insertJob(gw, { status: 'running', finishedAgo: null, expiresIn: null })
  for (const id of [old, recent]) {
    await sql(gw.databaseUrl, 'INSERT INTO idempotency_keys (client_id, key, request_hash, job_id) VALUES (\'alpha\', $1::text, \'h\', $1::uuid)', [id])
  }

  const report = await gw.app.sweeper.sweep()
  t.match(report, { erased: 2, rowsDeleted: 12, jobsDeleted: 1 }, 'one sweep erases, purges, then deletes the job past retention')
  const left = (await sql<{ id: string }>(gw.databaseUrl, 'SELECT id FROM jobs ORDER BY created_at')).map(r => r.id).sort()
  t.same(left, [recent, running].sort(), 'the job finished 2 hours ago is gone; one finished 30 minutes ago and a running one stay')
  t.equal((await gw.request(`/jobs/${old}`)).status, 404)
  t.equal(await count(gw, 'SELECT count(*) AS n FROM idempotency_keys WHERE job_id = $1', [old]), 0, 'its idempotency key went with it')
  t.equal(await count(gw, 'SELECT count(*) AS n FROM idempotency_keys WHERE job_id = $1', [recent]), 1)
  t.equal(await count(gw, STORED_COUNT, []), 0)
})

t.test('a job past retention whose completion callback is still to be delivered stays until it is delivered', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { JOB_RETENTION_SECONDS: '3600' } })
  const waiting = await insertJob(gw, { status: 'completed', finishedAgo: '2 hours', expiresIn: '-1 hour' })
  await sql(gw.databaseUrl, 'UPDATE jobs SET callback_status = \'pending\', callback_url = \'https://receiver.example/hook\' WHERE id = $1', [waiting])
  await gw.app.sweeper.sweep()
  t.equal(await count(gw, 'SELECT count(*) AS n FROM jobs WHERE id = $1', [waiting]), 1, 'kept while its callback is pending')
  await sql(gw.databaseUrl, 'UPDATE jobs SET callback_status = \'delivered\', callback_url = NULL WHERE id = $1', [waiting])
  await gw.app.sweeper.sweep()
  t.equal(await count(gw, 'SELECT count(*) AS n FROM jobs WHERE id = $1', [waiting]), 0, 'deleted once it was delivered')
})

t.test('an Idempotency-Key lives IDEMPOTENCY_KEY_TTL_HOURS: then the same key starts a new job, and the sweeper deletes it', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { IDEMPOTENCY_KEY_TTL_HOURS: '2' } })
  const body = (since: string) => JSON.stringify({ upstream: 'drchrono', resource: 'appointments', params: { since } })
  const post = (key: string, since = '2024-02-01') => gw.request('/jobs', { method: 'POST', headers: { 'idempotency-key': key }, body: body(since) })
  const key = `key-${MARK}`

  const first = await post(key)
  t.equal(first.status, 202)
  const { id } = await first.json()
  // Finished, so that an identical body is not joined to it as an in-flight duplicate.
  await sql(gw.databaseUrl, "UPDATE jobs SET status = 'failed', error_code = 'upstream_rejected', finished_at = now(), expires_at = now() + interval '1 hour' WHERE id = $1", [id])
  const replay = await post(key)
  t.equal(replay.status, 200, 'within the TTL a replay is the same job')
  t.equal((await replay.json()).id, id)
  t.equal((await post(key, '2024-03-01')).status, 422, 'and another body with the key is refused')
  t.same(await sql(gw.databaseUrl, 'SELECT key FROM idempotency_keys WHERE position($1 in key) > 0 OR position($1 in request_hash) > 0', [MARK]), [],
    'the key is not stored as sent')

  await sql(gw.databaseUrl, "UPDATE idempotency_keys SET created_at = now() - interval '2 hours 1 minute'")
  const after = await post(key, '2024-03-01')
  t.equal(after.status, 202, 'past the TTL the same key, even with another body, starts a new job')
  t.not((await after.json()).id, id)

  await sql(gw.databaseUrl, "INSERT INTO idempotency_keys (client_id, key, request_hash, job_id, created_at) VALUES ('beta', 'old', 'h', $1, now() - interval '3 hours')", [id])
  t.match(await gw.app.sweeper.sweep(), { keysDeleted: 1 }, 'the sweeper deletes a key past its TTL')
  t.same((await sql<{ client_id: string }>(gw.databaseUrl, 'SELECT client_id FROM idempotency_keys')).map(r => r.client_id), ['alpha'],
    'the new job\'s key stays')
})

t.test('webhook deliveries go RESULT_TTL_SECONDS after they arrived, taken by a job or not, in batches', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { RESULT_TTL_SECONDS: '600' } })
  const insert = (messageId: string, age: string, jobId: string | null) => sql(gw.databaseUrl, `
    INSERT INTO webhook_deliveries (upstream, message_id, key, outcome, job_id, received_at)
    VALUES ('metriport', $1, 'req', $2, $3, now() - $4::interval)`, [messageId, JSON.stringify({ records: [MARK] }), jobId, age])
  for (let i = 0; i < 2500; i += 500) {
    await sql(gw.databaseUrl, `INSERT INTO webhook_deliveries (upstream, message_id, key, outcome, received_at)
      SELECT 'metriport', 'unmatched-' || g, 'req', '{}', now() - interval '11 minutes' FROM generate_series($1::int, $1::int + 499) g`, [i])
  }
  await insert('taken-old', '11 minutes', randomUUID())
  await insert('fresh', '1 minute', null)
  t.match(await gw.app.sweeper.sweep(), { deliveriesDeleted: 2501 }, 'all old deliveries, over several batches of 1000')
  t.same((await sql<{ message_id: string }>(gw.databaseUrl, 'SELECT message_id FROM webhook_deliveries')).map(r => r.message_id), ['fresh'])
})
