/**
 * Every replica runs the sweeper, and their passes fall into step. A sweeper statement must then take what the
 * other pass is not holding rather than queue behind its row locks (and find the rows gone when it gets them):
 * each delete runs here while another transaction holds part of the same work, under a lock_timeout that turns
 * any wait into an error. No clock is read: waiting is detected by PostgreSQL, not measured.
 */
import pg from 'pg'
import t from 'tap'
import { deleteExpiredIdempotencyKeys, purgeOldDeliveries } from '../../src/db/sql/expiry.js'
import { deleteResultsBatch } from '../../src/db/sql/results.js'
import { testDatabase } from '../helpers/database.js'
import { storePage } from '../helpers/stored-results.js'

t.test('two sweeps at once split the work instead of waiting on each other', async t => {
  const url = await testDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  t.teardown(() => pool.end())
  const { rows: [job] } = await pool.query<{ id: string }>(`
    INSERT INTO jobs (id, client_id, upstream, resource, status, records, finished_at, expires_at, erased_at, purge_pending)
    VALUES (gen_random_uuid(), 'alpha', 'drchrono', 'appointments', 'expired', 30, now(), now(), now(), true) RETURNING id`)
  const jobId = job!.id
  // 30 stored pages of one record each: the sweep deletes pages.
  for (let page = 1; page <= 30; page++) await storePage(pool, jobId, page, ['{}'])
  await pool.query(`INSERT INTO idempotency_keys (client_id, key, request_hash, job_id, created_at)
    SELECT 'alpha', 'k' || g, 'h', $1, now() - interval '2 days' FROM generate_series(1, 30) g`, [jobId])
  await pool.query(`INSERT INTO webhook_deliveries (upstream, message_id, key, outcome, received_at)
    SELECT 'metriport', 'm' || g, 'k' || g, '{}', now() - interval '2 hours' FROM generate_series(1, 30) g`)

  // The other replica's sweep: a batch of each kind deleted in a transaction that has not committed yet.
  const other = await pool.connect()
  t.teardown(() => other.release())
  await other.query('BEGIN')
  t.same(await deleteResultsBatch(other, jobId, 10), { pages: 10, records: 10 })
  t.equal(await deleteExpiredIdempotencyKeys(other, 24, 10), 10)
  t.equal(await purgeOldDeliveries(other, 3600, 10), 10)

  const mine = await pool.connect()
  t.teardown(() => mine.release())
  await mine.query("SET lock_timeout = '5s'")
  t.same(await deleteResultsBatch(mine, jobId, 100), { pages: 20, records: 20 }, 'result pages: the 20 the other sweep does not hold, at once')
  t.equal(await deleteExpiredIdempotencyKeys(mine, 24, 100), 20, 'idempotency keys: likewise')
  t.equal(await purgeOldDeliveries(mine, 3600, 100), 20, 'webhook deliveries: likewise')

  await other.query('COMMIT')
  const left = await mine.query<{ results: number, keys: number, deliveries: number }>(`SELECT
    (SELECT count(*)::int FROM result_pages) AS results, (SELECT count(*)::int FROM idempotency_keys) AS keys,
    (SELECT count(*)::int FROM webhook_deliveries) AS deliveries`)
  t.same(left.rows[0], { results: 0, keys: 0, deliveries: 0 }, 'between them, both sweeps deleted everything due')
})
