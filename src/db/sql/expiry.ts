/**
 * When a job expires, and the statements that carry it out: the sweeper's (mark completed jobs past `expires_at`
 * as expired, then find jobs with rows to delete) and DELETE's on a completed job.
 */
import { query, sql, type Queryable } from './sql.js'

/**
 * A completed job whose `expiresAt` has passed. It reads `expired` from that moment on (API.md), in every answer,
 * whether or not the sweeper has marked its row yet; the sweeper marks exactly these. Judged on the database's
 * clock: the one every replica and the sweeper share, so no two answers disagree on which side of `expiresAt` a
 * job is, whatever the replicas' own clocks say.
 */
const completedPastExpiry = sql`(status = 'completed' AND expires_at <= now())`

/** The status every read of a job shows (job-reads.ts): the row's, but `expired` for a completed job past expiry. */
export const statusAsRead = sql`(CASE WHEN ${completedPastExpiry} THEN 'expired'::"JobStatus" ELSE status END)`

/** Completed jobs past their expiry become `expired` in the row too; returns their ids. */
export async function markExpiredJobs (db: Queryable): Promise<string[]> {
  const { rows } = await query<{ id: string }>(db, sql`
    UPDATE jobs SET status = 'expired'
    WHERE ${completedPastExpiry}
    RETURNING id`)
  return rows.map(r => r.id)
}

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

/**
 * Jobs past expiry (any terminal status) or cancelled/expired that still hold result rows: the sweeper
 * deletes their rows in batches. Bounded so one sweep never grows without limit.
 */
export async function jobsWithStaleResults (db: Queryable, limit: number): Promise<string[]> {
  const { rows } = await query<{ id: string }>(db, sql`
    SELECT j.id FROM jobs j
    WHERE (j.expires_at <= now() OR j.status IN ('cancelled', 'expired'))
      AND EXISTS (SELECT 1 FROM job_results r WHERE r.job_id = j.id)
    LIMIT ${limit}`)
  return rows.map(r => r.id)
}

/**
 * Forgets webhook deliveries once results of their age would have expired: they hold record content (document
 * metadata), which must not outlive the results. A redelivery after that finds no waiting job and does nothing.
 */
export async function purgeOldDeliveries (db: Queryable, ttlSeconds: number): Promise<number> {
  const { rowCount } = await query(db, sql`DELETE FROM webhook_deliveries WHERE received_at < now() - make_interval(secs => ${ttlSeconds})`)
  return rowCount ?? 0
}
