/**
 * MAX_ACTIVE_JOBS_PER_CLIENT: a client with that many queued or running jobs gets 429 `too_many_active_jobs` for
 * a new one, while replays and in-flight twins still return their job; two replicas taking POSTs at once never
 * let a client past the limit.
 */
import t from 'tap'
import { withConnection } from '../../src/db/sql/sql.js'
import { sql } from '../helpers/database.js'
import { clientKeys, startGateway, type TestGateway } from '../helpers/gateway.js'

const problemType = 'application/problem+json; charset=utf-8'
const readJob = (n: number): string => JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { doctor: n + 1 } })

async function post (gw: TestGateway, body: string, init: { key?: string, idempotencyKey?: string } = {}) {
  const headers: Record<string, string> = init.idempotencyKey === undefined ? {} : { 'idempotency-key': init.idempotencyKey }
  const res = await gw.request('/jobs', { method: 'POST', body, headers, key: init.key })
  return { status: res.status, type: res.headers.get('content-type'), body: await res.json() }
}

t.test('the default limit is 20 active jobs per client; replays and twins still answer 200', async t => {
  const gw = await startGateway(t, { startWorkers: false })
  const first = await post(gw, readJob(0), { idempotencyKey: 'first' })
  t.equal(first.status, 202)
  for (let i = 1; i < 20; i++) t.equal((await post(gw, readJob(i))).status, 202, `job ${i + 1} of 20`)

  const over = await post(gw, readJob(20))
  t.equal(over.status, 429, 'the 21st active job is refused')
  t.equal(over.type, problemType)
  t.match(over.body, { code: 'too_many_active_jobs', status: 429, type: 'tag:bulk-gateway,2026:problem:too_many_active_jobs', detail: /20 queued or running jobs/ })
  const writeOver = await post(gw, JSON.stringify({ upstream: 'clinia', resource: 'resources', operations: [{ action: 'DELETE', delete: { type: 'provider', id: 'p1' } }] }))
  t.equal(writeOver.status, 429, 'write jobs count the same')

  const replay = await post(gw, readJob(0), { idempotencyKey: 'first' })
  t.equal(replay.status, 200, 'an idempotent replay is not a new job')
  t.equal(replay.body.id, first.body.id)
  const twin = await post(gw, readJob(7))
  t.equal(twin.status, 200, 'nor is an identical read job still in flight')

  t.equal((await post(gw, readJob(20), { key: clientKeys.beta })).status, 202, 'another client has its own count')

  await gw.request(`/jobs/${first.body.id}`, { method: 'DELETE' })
  t.equal((await post(gw, readJob(20))).status, 202, 'a cancelled job frees its place')
  t.equal((await post(gw, readJob(21))).status, 429, 'and only its place')
  const [row] = await sql<{ n: number }>(gw.databaseUrl, 'SELECT count(*)::int AS n FROM jobs WHERE client_id = \'alpha\' AND status IN (\'queued\', \'running\')')
  t.equal(row?.n, 20)
})

t.test('two replicas, many POSTs at once: the limit holds exactly', async t => {
  const one = await startGateway(t, { startWorkers: false, env: { MAX_ACTIVE_JOBS_PER_CLIENT: '5' } })
  const two = await startGateway(t, { startWorkers: false, databaseUrl: one.databaseUrl, env: { MAX_ACTIVE_JOBS_PER_CLIENT: '5' } })
  for (let i = 0; i < 3; i++) t.equal((await post(one, readJob(i))).status, 202)
  // 3 of 5 taken: of 24 distinct jobs sent at once through both replicas, exactly 2 may start.
  const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => post(i % 2 === 0 ? one : two, readJob(100 + i))))
  const statuses = answers.map(a => a.status).sort()
  t.same(statuses, [...Array(2).fill(202), ...Array(22).fill(429)], 'exactly 2 accepted, the rest 429')
  const [row] = await sql<{ n: number }>(one.databaseUrl, 'SELECT count(*)::int AS n FROM jobs WHERE client_id = \'alpha\'')
  t.equal(row?.n, 5, 'and 5 jobs in the table')
})

t.test('a POST waits for another replica\'s insert still in flight, and counts it', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { MAX_ACTIVE_JOBS_PER_CLIENT: '2' } })
  t.equal((await post(gw, readJob(0))).status, 202, 'one of two')
  await withConnection(gw.databaseUrl, async other => {
    // Another replica halfway through creating alpha's second job: it holds the client's lock, its row uncommitted.
    await other.query('BEGIN')
    await other.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', ['active-jobs:alpha'])
    await other.query('INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash) VALUES (gen_random_uuid(), \'alpha\', \'drchrono\', \'patients\', \'{}\', \'in-flight\')')
    let answered = false
    const pending = post(gw, readJob(1)).finally(() => { answered = true })
    // Commit only once the POST waits for the lock (or has answered without waiting, which is the bug).
    while (!answered) {
      const [row] = (await other.query('SELECT count(*)::int AS n FROM pg_locks WHERE locktype = \'advisory\' AND NOT granted')).rows as Array<{ n: number }>
      if ((row?.n ?? 0) > 0) break
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    await other.query('COMMIT')
    const answer = await pending
    t.equal(answer.status, 429, 'the POST counted the job committed while it waited')
  })
  const [row] = await sql<{ n: number }>(gw.databaseUrl, 'SELECT count(*)::int AS n FROM jobs WHERE client_id = \'alpha\'')
  t.equal(row?.n, 2, 'never more than the limit')
})

t.test('MAX_ACTIVE_JOBS_PER_CLIENT=0 switches the limit off', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { MAX_ACTIVE_JOBS_PER_CLIENT: '0' } })
  const statuses = []
  for (let i = 0; i < 25; i++) statuses.push((await post(gw, readJob(i))).status)
  t.same(statuses, Array(25).fill(202))
})
