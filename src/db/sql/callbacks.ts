/**
 * The completion callbacks' outbox: the callback columns of `jobs`. A callback is due once its job has ended (any
 * statement that ends a job makes it so, in its own transaction) and its `callback_next_at` has passed (null: at
 * once). A deliverer claims due callbacks with a lease (`callback_lease_owner`, and `callback_next_at` pushed to
 * the lease's end, after which another deliverer may take it: the one that held it died), and writes each
 * attempt's result only while it still holds that lease. Found through `jobs_callback_pending`, which holds only
 * the callbacks still to deliver.
 */
import type { CallbackStatus } from '../../generated/prisma/client.js'
import type { JobSummary } from '../../domain/job.js'
import { statusAsRead } from './expiry.js'
import { jobFieldColumns } from './jobs.js'
import { query, sql, type Queryable } from './sql.js'

/** A job whose callback a deliverer claimed: the job as clients read it now, and where to send it. */
export interface ClaimedCallback { job: JobSummary, url: string }

const ended = sql`status IN ('completed', 'failed', 'cancelled', 'expired')`

/** Up to `limit` due callbacks, claimed by `owner` for `leaseSeconds`; rows another deliverer is claiming are skipped. */
export async function claimDueCallbacks (db: Queryable, owner: string, leaseSeconds: number, limit: number): Promise<ClaimedCallback[]> {
  const { rows } = await query<JobSummary & { callbackUrl: string }>(db, sql`
    UPDATE jobs SET callback_lease_owner = ${owner}, callback_next_at = now() + make_interval(secs => ${leaseSeconds})
    WHERE id = ANY (ARRAY(
      SELECT id FROM jobs
      WHERE callback_status = 'pending' AND ${ended} AND (callback_next_at IS NULL OR callback_next_at <= now())
      ORDER BY callback_next_at NULLS FIRST
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED))
    RETURNING ${jobFieldColumns}, ${statusAsRead} AS status, callback_url AS "callbackUrl"`)
  return rows.map(row => ({ job: row, url: row.callbackUrl }))
}

/** Seconds until the next callback of an ended job is due (0 when one is due now), or null when none waits. */
export async function secondsToNextCallback (db: Queryable): Promise<number | null> {
  const { rows } = await query<{ seconds: number | null }>(db, sql`
    SELECT greatest(0, extract(epoch FROM coalesce(callback_next_at, now()) - now()))::float8 AS seconds
    FROM jobs WHERE callback_status = 'pending' AND ${ended}
    ORDER BY callback_next_at NULLS FIRST LIMIT 1`)
  return rows[0]?.seconds ?? null
}

/** How an attempt ended: delivered, failed for good, or to be tried again after `retryInSeconds`. */
export type CallbackAttemptResult =
  | { status: Exclude<CallbackStatus, 'pending'>, error: string | null }
  | { status: 'pending', error: string, retryInSeconds: number }

/**
 * Counts an attempt and records its result, while `owner` still holds the callback. A callback delivered or
 * failed for good forgets its URL: nothing is sent to it again. False when the lease was lost.
 */
export async function recordCallbackAttempt (db: Queryable, jobId: string, owner: string, result: CallbackAttemptResult): Promise<boolean> {
  const retryIn = result.status === 'pending' ? result.retryInSeconds : null
  const { rowCount } = await query(db, sql`
    UPDATE jobs SET callback_attempts = callback_attempts + 1, callback_status = ${result.status}::"CallbackStatus",
      callback_last_error = ${result.error}, callback_lease_owner = NULL,
      callback_next_at = CASE WHEN ${retryIn}::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => ${retryIn}::float8) END,
      callback_url = CASE WHEN ${result.status} = 'pending' THEN callback_url END
    WHERE id = ${jobId} AND callback_lease_owner = ${owner} AND callback_status = 'pending'`)
  return rowCount === 1
}

/** Gives a claimed callback back uncounted (the gateway is stopping): due again at once, for any deliverer. */
export async function releaseCallback (db: Queryable, jobId: string, owner: string): Promise<void> {
  await query(db, sql`
    UPDATE jobs SET callback_lease_owner = NULL, callback_next_at = now()
    WHERE id = ${jobId} AND callback_lease_owner = ${owner} AND callback_status = 'pending'`)
}
