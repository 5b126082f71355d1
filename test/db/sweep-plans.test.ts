/**
 * A sweep costs what it deletes, not the history the tables hold: with a long history (finished, swept jobs),
 * many live result rows and fresh statistics, no sweeper statement reads more than its work. Checked on
 * PostgreSQL's own account (EXPLAIN ANALYZE, in a transaction rolled back) of the very statements the sweeper
 * sends, captured as it would send them: no sequential scan of jobs, result_pages, idempotency_keys or
 * webhook_deliveries, and the rows every scan of them read (kept or filtered out) counted, against a bound far
 * below the history. An index that walks the history (the former "which jobs still hold rows") fails the count.
 */
import pg from 'pg'
import t from 'tap'
import {
  deleteExpiredIdempotencyKeys, deleteRetiredJobs, eraseExpiredJobs, jobsToPurge, purgeFinished, purgeOldDeliveries,
} from '../../src/db/sql/expiry.js'
import { deleteResultsBatch } from '../../src/db/sql/results.js'
import type { Queryable } from '../../src/db/sql/sql.js'
import { testDatabase } from '../helpers/database.js'

const TABLES = ['jobs', 'result_pages', 'idempotency_keys', 'webhook_deliveries']

/** Records the statements a sweep step sends instead of running them (each answers "nothing more to do"). */
function recorder (): { db: Queryable, sent: Array<{ text: string, values: unknown[] }> } {
  const sent: Array<{ text: string, values: unknown[] }> = []
  const db = { query: async (q: { text: string, values: unknown[] }) => { sent.push(q); return { rows: [], rowCount: 0 } } }
  return { db: db as unknown as Queryable, sent }
}

interface PlanNode {
  'Node Type': string
  'Relation Name'?: string
  'Actual Rows'?: number
  'Actual Loops'?: number
  'Rows Removed by Filter'?: number
  'Rows Removed by Index Recheck'?: number
  Plans?: PlanNode[]
}

/** Rows the plan's scans of our tables read: returned or filtered out, in every loop. */
function rowsRead (node: PlanNode): number {
  const own = node['Relation Name'] !== undefined && TABLES.includes(node['Relation Name']) && /Scan/.test(node['Node Type'])
    ? ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * (node['Actual Loops'] ?? 1)
    : 0
  return own + (node.Plans ?? []).reduce((n, p) => n + rowsRead(p), 0)
}

function seqScans (node: PlanNode): string[] {
  const own = node['Node Type'] === 'Seq Scan' && node['Relation Name'] !== undefined ? [node['Relation Name']] : []
  return [...own, ...(node.Plans ?? []).flatMap(seqScans)]
}

t.test('every sweeper statement finds its work through an index', async t => {
  const url = await testDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  t.teardown(() => pool.end())
  // History: 200,000 swept jobs (erased, no rows). Live: 2,000 completed jobs with 10 stored pages each. Due: 20 jobs
  // past expiry with rows, 20 past retention, and old idempotency keys and deliveries among many fresh ones.
  await pool.query(`
    INSERT INTO jobs (id, client_id, upstream, resource, params, status, records, finished_at, expires_at, erased_at)
    SELECT gen_random_uuid(), 'alpha', 'drchrono', 'appointments', NULL, 'expired', 10,
      now() - interval '2 days', now() - interval '2 days' + interval '1 hour', now() - interval '2 days' + interval '1 hour'
    FROM generate_series(1, 200000)`)
  await pool.query(`
    INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records, finished_at, expires_at)
    SELECT gen_random_uuid(), 'alpha', 'drchrono', 'appointments', '{}', 'h' || g, 'completed', 100, now(), now() + interval '1 hour'
    FROM generate_series(1, 2020) g`)
  await pool.query('UPDATE jobs SET expires_at = now() - interval \'1 minute\' WHERE id IN (SELECT id FROM jobs WHERE status = \'completed\' LIMIT 20)')
  // 10 pages of 10 records per completed job, as the gateway stores them: each record and a line feed, where each
  // ends (90 bytes of text: too small to compress, so stored as it is).
  await pool.query(`INSERT INTO result_pages (job_id, page, first, count, plain, ends, codec, bytes, body)
    SELECT id, p, 0, 10, true, ARRAY(SELECT g * 9 - 1 FROM generate_series(1, 10) g), 0, 90, convert_to(repeat('{"id":1}' || E'\\n', 10), 'UTF8')
    FROM jobs, generate_series(1, 10) p WHERE status = 'completed'`)
  await pool.query('UPDATE jobs SET finished_at = now() - interval \'40 days\' WHERE id IN (SELECT id FROM jobs WHERE erased_at IS NOT NULL LIMIT 20)')
  await pool.query(`INSERT INTO idempotency_keys (client_id, key, request_hash, job_id, created_at)
    SELECT 'alpha', 'k' || g, 'h', (SELECT id FROM jobs LIMIT 1), now() - CASE WHEN g <= 20 THEN interval '2 days' ELSE interval '1 minute' END
    FROM generate_series(1, 50000) g`)
  await pool.query(`INSERT INTO webhook_deliveries (upstream, message_id, key, outcome, received_at)
    SELECT 'metriport', 'm' || g, 'k' || g, '{}', now() - CASE WHEN g <= 20 THEN interval '2 hours' ELSE interval '1 minute' END
    FROM generate_series(1, 50000) g`)
  await pool.query('UPDATE jobs SET purge_pending = true WHERE id IN (SELECT id FROM jobs WHERE status = \'completed\' LIMIT 20)')
  await pool.query('ANALYZE')

  const { db, sent } = recorder()
  // A job past expiry with 100 rows: the results step's work for one job.
  const someJob = (await pool.query<{ id: string }>("SELECT id FROM jobs WHERE status = 'completed' AND expires_at <= now() LIMIT 1")).rows[0]!.id
  await eraseExpiredJobs(db, 500)
  await jobsToPurge(db, null, 100)
  await jobsToPurge(db, someJob, 100)
  await deleteResultsBatch(db, someJob, 5000)
  await purgeFinished(db, someJob)
  await deleteRetiredJobs(db, 30 * 86_400, 1000)
  await deleteExpiredIdempotencyKeys(db, 24, 1000)
  await purgeOldDeliveries(db, 3600, 1000)
  t.equal(sent.length, 8)

  const client = await pool.connect()
  t.teardown(() => client.release())
  for (const statement of sent) {
    const name = statement.text.replace(/\s+/g, ' ').trim().slice(0, 80)
    await client.query('BEGIN')
    const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement.text}`, statement.values)
    await client.query('ROLLBACK')
    const plan = rows[0]!['QUERY PLAN'][0]!.Plan
    t.same(seqScans(plan).filter(r => TABLES.includes(r)), [], `no sequential scan: ${name}…`)
    // The work is 20 of each kind (10 pages for the results of one job); the history is 200,000 jobs and rows.
    const read = rowsRead(plan)
    t.ok(read <= 2000, `${read} rows read: ${name}…`)
  }
})
