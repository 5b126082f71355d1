/**
 * Claims interleave clients: the client with the fewest running jobs goes first, so one client's long queue does
 * not starve another's single job. The claim stays one statement that the indexes serve, however many jobs wait.
 */
import pg from 'pg'
import t from 'tap'
import { claimNextJob } from '../../src/db/sql/jobs.js'
import type { Queryable } from '../../src/db/sql/sql.js'
import { sql } from '../helpers/database.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { clientKeys, startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

// 31 DrChrono jobs run one after another, and a 200 000-row table: more than tap's 180 s default on a busy machine.
t.setTimeout(900_000)

async function submit (gw: TestGateway, key: string, doctor: number): Promise<string> {
  const res = await gw.request('/jobs', { method: 'POST', key, body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { doctor: doctor + 1 } }) })
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}`)
  return (await res.json()).id
}

t.test('client A queues 30 jobs, then client B one: the worker runs B\'s among the first', async t => {
  const sim = await startDrchrono(t, { inProgressPolls: 0, generationMs: 0, recordCount: { patients: 3 } })
  const gw = await startGateway(t, { startWorkers: false, env: { ...drchronoEnv(sim), WORKER_CONCURRENCY: '1', MAX_ACTIVE_JOBS_PER_CLIENT: '50' } })
  const a: string[] = []
  for (let i = 0; i < 30; i++) a.push(await submit(gw, clientKeys.alpha, i))
  const b = await submit(gw, clientKeys.beta, 0)
  // One worker, one job at a time: the order jobs start in is the order they were claimed in.
  gw.app.worker.start()
  t.teardown(() => gw.app.worker.stop())
  t.equal((await waitForJob(gw, b, { key: clientKeys.beta, timeoutMs: 120_000 })).status, 'completed')
  const started = await sql<{ id: string }>(gw.databaseUrl, 'SELECT id FROM jobs WHERE started_at IS NOT NULL ORDER BY started_at, id')
  const order = started.map(r => r.id)
  t.equal(order[0], a[0], 'A\'s oldest job first (neither client had a job running)')
  t.equal(order[1], b, 'then B\'s, since A had one running and B none')
  t.same(order.slice(2), a.slice(1, order.length - 1), 'then A\'s others, oldest first')
})

/** The claim's SQL as sent, to ask PostgreSQL for its plan. */
async function claimStatement (upstreams: string[] | null = null): Promise<{ text: string, values: unknown[] }> {
  let sent: { text: string, values: unknown[] } | undefined
  const capture = { query: async (q: { text: string, values: unknown[] }) => { sent = q; return { rows: [] } } } as unknown as Queryable
  await claimNextJob(capture, 'explain', 30, upstreams)
  if (sent === undefined) throw new Error('claimNextJob sent nothing')
  return sent
}

interface PlanNode { 'Node Type': string, 'Relation Name'?: string, 'Actual Rows'?: number, 'Actual Loops'?: number, Plans?: PlanNode[] }
const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)]

t.test('with 200 000 jobs, 114 000 of them queued, the claim reads a few index entries per client', async t => {
  const gw = await startGateway(t, { startWorkers: false })
  const url = gw.databaseUrl
  // 40 clients; client-0 has most of the queue. 3 jobs in 7 are history (completed).
  await sql(url, `INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, created_at, run_after)
    SELECT gen_random_uuid(), CASE WHEN i % 3 = 0 THEN 'client-' || (i % 40) ELSE 'client-0' END, 'drchrono', 'patients', '{}', md5(i::text),
      (CASE WHEN i % 7 < 3 THEN 'completed' ELSE 'queued' END)::"JobStatus", now() - make_interval(secs => i), now() - make_interval(secs => i)
    FROM generate_series(1, 200000) AS i`)
  // A job whose worker died (lease expired), and one running under a live lease for client-0.
  await sql(url, `INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, lease_owner, lease_expires_at, created_at)
    VALUES ('00000000-0000-4000-8000-000000000001', 'client-7', 'drchrono', 'patients', '{}', 'orphan', 'running', 'gone', now() - interval '1 minute', now()),
      ('00000000-0000-4000-8000-000000000002', 'client-0', 'drchrono', 'patients', '{}', 'live', 'running', 'alive', now() + interval '1 hour', now())`)
  await sql(url, 'ANALYZE jobs')

  // The gateway's own claim names the upstreams it exposes (first, in a transaction rolled back); the plan must not care.
  for (const upstreams of [['drchrono', 'cliniko'], null]) {
    const { text, values } = await claimStatement(upstreams)
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    let explained: { 'QUERY PLAN': Array<{ Plan: PlanNode }> }
    try {
      await client.query('BEGIN')
      explained = (await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, values)).rows[0]
      await client.query(upstreams === null ? 'COMMIT' : 'ROLLBACK')
    } finally {
      await client.end()
    }
    const plan = nodes(explained['QUERY PLAN'][0]!.Plan)
    t.same(plan.filter(n => n['Node Type'] === 'Seq Scan').map(n => n['Relation Name']), [], `no sequential scan (upstreams ${String(upstreams)})`)
    const rowsRead = plan.filter(n => /Index/.test(n['Node Type'])).reduce((sum, n) => sum + (n['Actual Rows'] ?? 0) * (n['Actual Loops'] ?? 1), 0)
    t.ok(rowsRead < 2000, `index entries read: ${Math.round(rowsRead)} (of 114 000 queued jobs; upstreams ${String(upstreams)})`)
  }
  const pool = gw.app.db.pool
  // EXPLAIN ANALYZE ran the claim: it took the orphan, which comes first.
  const [orphan] = await sql<{ status: string, lease_owner: string }>(url, 'SELECT status, lease_owner FROM jobs WHERE id = \'00000000-0000-4000-8000-000000000001\'')
  t.same(orphan, { status: 'running', lease_owner: 'explain' }, 'the job whose worker died is taken first')
  // client-0 has a job running; every other client with queued jobs has none, so they come first, oldest first.
  const next = await claimNextJob(pool, 'w', 30)
  t.not(next?.clientId, 'client-0', `then a client with nothing running (${next?.clientId})`)
  const seen = new Set<string>()
  for (let i = 0; i < 39; i++) seen.add((await claimNextJob(pool, 'w', 30))?.clientId ?? 'none')
  t.ok(seen.size >= 30, `39 more claims reach ${seen.size} clients, not one client's FIFO`)
})

t.test('a replica claims only jobs of the upstreams it exposes; another replica takes the rest', async t => {
  const sim = await startDrchrono(t, { inProgressPolls: 0, generationMs: 0, recordCount: { patients: 3 } })
  // Replica B exposes drchrono, its worker not yet started; replica A, on the same database, exposes only cliniko.
  const b = await startGateway(t, { startWorkers: false, env: { ...drchronoEnv(sim), UPSTREAMS: 'drchrono' } })
  const a = await startGateway(t, { databaseUrl: b.databaseUrl, env: { UPSTREAMS: 'cliniko', WORKER_POLL_SECONDS: '1' } })
  const id = await submit(b, clientKeys.alpha, 0)
  // A died holding a drchrono job: its lease ran out. A may not take that either.
  await sql(b.databaseUrl, `INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, lease_owner, lease_expires_at)
    VALUES ('00000000-0000-4000-8000-0000000000aa', 'alpha', 'drchrono', 'patients', '{"doctor":5}', 'orphan', 'running', 'gone', now() - interval '1 minute')`)
  await new Promise(resolve => setTimeout(resolve, 2500))
  const [queued] = await sql<{ status: string, attempts: number }>(b.databaseUrl, 'SELECT status, attempts FROM jobs WHERE id = $1', [id])
  t.same(queued, { status: 'queued', attempts: 0 }, 'A left the drchrono job alone (before, it claimed it and failed it with upstream_not_configured)')
  t.equal(await claimNextJob(a.app.db.pool, 'a-again', 30, ['cliniko']), null, 'nothing for cliniko, the orphan included')
  t.equal((await claimNextJob(a.app.db.pool, 'any', 30, ['ocl'])), null)
  // A parked job past its deadline is failed by any worker: none of its upstream's may be left.
  await sql(b.databaseUrl, `INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, waiting_for, lease_expires_at)
    VALUES ('00000000-0000-4000-8000-0000000000bb', 'alpha', 'metriport', 'patient-documents', '{}', 'parked', 'running', 'request-1', now() - interval '1 second')`)
  let parked: { status: string, error_code: string | null } | undefined
  for (let i = 0; i < 100 && parked?.status !== 'failed'; i++) {
    await new Promise(resolve => setTimeout(resolve, 100));
    [parked] = await sql<{ status: string, error_code: string | null }>(b.databaseUrl, 'SELECT status, error_code FROM jobs WHERE id = \'00000000-0000-4000-8000-0000000000bb\'')
  }
  t.same(parked, { status: 'failed', error_code: 'upstream_timeout' }, 'A failed the overdue parked metriport job')
  b.app.worker.start()
  t.teardown(() => b.app.worker.stop())
  t.equal((await waitForJob(b, id, { timeoutMs: 60_000 })).status, 'completed', 'B ran it')
  const [orphan] = await sql<{ attempts: number, lease_owner: string | null }>(b.databaseUrl, 'SELECT attempts, lease_owner FROM jobs WHERE id = \'00000000-0000-4000-8000-0000000000aa\'')
  t.ok(orphan!.attempts >= 1 && orphan!.lease_owner !== 'gone', 'and B took the orphan')
})
