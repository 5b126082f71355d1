/**
 * When a job expires, and the statements that carry it out: DELETE's on a completed job, and the sweeper's.
 *
 * Every sweeper statement finds its work through a partial index of what is still to do (migration
 * 20261207060815): `jobs_erase_due` (finished, not yet erased), `jobs_purge_pending` (result rows due for
 * deletion), `jobs_retention_due` (erased, waiting for JOB_RETENTION_DAYS), and plain indexes on the age of
 * idempotency keys and webhook deliveries. So a sweep reads what it changes, never the history the tables hold,
 * and each statement changes one bounded batch (a short transaction). Every replica sweeps; each statement takes
 * its rows FOR UPDATE SKIP LOCKED, so two sweeps that run at once split the work instead of one waiting on the
 * other's locks to find them deleted (the soak saw two replicas' sweeps fall into step and take equally long).
 */
import { query, sql, type Queryable } from './sql.js'

/**
 * A completed job whose `expiresAt` has passed. It reads `expired` from that moment on (docs/API.md), in every answer,
 * whether or not the sweeper has marked its row yet; the sweeper marks exactly these. Judged on the database's
 * clock: the one every replica and the sweeper share, so no two answers disagree on which side of `expiresAt` a
 * job is, whatever the replicas' own clocks say.
 */
const completedPastExpiry = sql`(status = 'completed' AND expires_at <= now())`

/**
 * A finished job past its `expiresAt`: what may hold patient data (params, payload, checkpoint, upstreamInfo, the
 * error message) reads null from that moment on (docs/API.md), whether or not the sweeper has erased it from the row.
 */
export const pastExpiry = sql`(expires_at <= now())`

/** The status every read of a job shows (job-reads.ts): the row's, but `expired` for a completed job past expiry. */
export const statusAsRead = sql`(CASE WHEN ${completedPastExpiry} THEN 'expired'::"JobStatus" ELSE status END)`

/**
 * DELETE of a completed job: its results are dropped early and it is `expired` from now on. A job that reads
 * expired already stays as it was: its `expiresAt` never moves later. False when the job is not completed.
 */
export async function expireCompletedJob (db: Queryable, clientId: string, id: string): Promise<boolean> {
  const { rowCount } = await query(db, sql`
    UPDATE jobs SET status = 'expired', expires_at = least(expires_at, now())
    WHERE id = ${id} AND client_id = ${clientId} AND status = 'completed'`)
  return rowCount === 1
}

/** What one erase batch did: the jobs erased, and those of them that were completed and are now expired. */
export interface ErasedJobs { erased: string[], expired: string[] }

/**
 * Finished jobs past `expiresAt` keep only what operations need (docs/API.md): everything a client sent or an upstream
 * said about the run is erased, and a completed one becomes `expired`. Its result rows become due for deletion
 * (purge_pending; the EXISTS is one probe of the rows' primary key). Up to `limit` jobs, oldest expiry first.
 */
export async function eraseExpiredJobs (db: Queryable, limit: number): Promise<ErasedJobs> {
  const { rows } = await query<{ id: string, expired: boolean }>(db, sql`
    WITH due AS (
      SELECT id, status FROM jobs
      WHERE erased_at IS NULL AND expires_at IS NOT NULL AND expires_at <= now()
      ORDER BY expires_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED)
    UPDATE jobs j SET
      status = CASE WHEN due.status = 'completed' THEN 'expired'::"JobStatus" ELSE due.status END,
      params = NULL, payload = NULL, checkpoint = NULL, upstream_info = NULL, error_message = NULL,
      request_hash = NULL, waiting_for = NULL, wait_reason = NULL, wait_until = NULL,
      erased_at = now(),
      -- A job that stored records has pages to delete (records is counted in the transaction that stores them). Asking
      -- result_pages instead let the planner hash the whole table, or scan it per job until a row turned up.
      purge_pending = j.purge_pending OR j.records > 0
    FROM due WHERE j.id = due.id
    RETURNING j.id, due.status = 'completed' AS expired`)
  return { erased: rows.map(r => r.id), expired: rows.filter(r => r.expired).map(r => r.id) }
}

/** Up to `limit` jobs whose result rows are due for deletion, in id order after `after` (a keyset over the index). */
export async function jobsToPurge (db: Queryable, after: string | null, limit: number): Promise<string[]> {
  const { rows } = await query<{ id: string }>(db, sql`
    SELECT id FROM jobs WHERE purge_pending AND id > coalesce(${after}::uuid, '00000000-0000-0000-0000-000000000000'::uuid)
    ORDER BY id LIMIT ${limit}`)
  return rows.map(r => r.id)
}

/** The job's rows are all gone: it leaves the purge index. A row that somehow remains keeps it there. */
export async function purgeFinished (db: Queryable, jobId: string): Promise<void> {
  await query(db, sql`
    UPDATE jobs SET purge_pending = false
    WHERE id = ${jobId} AND purge_pending AND NOT EXISTS (SELECT 1 FROM result_pages WHERE job_id = ${jobId})`)
}

/**
 * Deletes up to `limit` erased jobs that finished more than `retentionSeconds` ago and hold no result rows (their
 * idempotency keys go with them, ON DELETE CASCADE through an index on job_id); returns how many went. A job whose
 * completion callback is still to be delivered stays until it is delivered or has failed (a long outage of the
 * deliverer must not lose it).
 */
export async function deleteRetiredJobs (db: Queryable, retentionSeconds: number, limit: number): Promise<number> {
  const { rowCount } = await query(db, sql`
    DELETE FROM jobs WHERE id IN (
      SELECT id FROM jobs
      WHERE erased_at IS NOT NULL AND finished_at < now() - make_interval(secs => ${retentionSeconds}) AND NOT purge_pending
        AND callback_status IS DISTINCT FROM 'pending'
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED)`)
  return rowCount ?? 0
}

/** Deletes up to `limit` idempotency keys older than `ttlHours` (a replay after that starts a new job anyway). */
export async function deleteExpiredIdempotencyKeys (db: Queryable, ttlHours: number, limit: number): Promise<number> {
  const { rowCount } = await query(db, sql`
    DELETE FROM idempotency_keys WHERE (client_id, key) IN (
      SELECT client_id, key FROM idempotency_keys WHERE created_at < now() - make_interval(hours => ${ttlHours})
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED)`)
  return rowCount ?? 0
}

/**
 * Deletes up to `limit` webhook deliveries received more than `ttlSeconds` ago, taken by a job or not: they hold
 * record content (document metadata), which must not outlive the results of its age. A redelivery after that
 * finds no waiting job and does nothing.
 */
export async function purgeOldDeliveries (db: Queryable, ttlSeconds: number, limit: number): Promise<number> {
  const { rowCount } = await query(db, sql`
    DELETE FROM webhook_deliveries WHERE (upstream, message_id) IN (
      SELECT upstream, message_id FROM webhook_deliveries WHERE received_at < now() - make_interval(secs => ${ttlSeconds})
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED)`)
  return rowCount ?? 0
}
