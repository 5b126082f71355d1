/** The sweeper's statements: mark completed jobs past `expires_at` as expired, then find jobs with rows to delete. */
import { query, sql, type Queryable } from './sql.js'

/** Completed jobs past their expiry become `expired`; returns their ids. */
export async function markExpiredJobs (db: Queryable): Promise<string[]> {
  const { rows } = await query<{ id: string }>(db, sql`
    UPDATE jobs SET status = 'expired'
    WHERE status = 'completed' AND expires_at <= now()
    RETURNING id`)
  return rows.map(r => r.id)
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
