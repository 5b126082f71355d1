/** Jobs by upstream and status, read at each metrics scrape. */
import { statusAsRead } from './expiry.js'
import { query, sql, type Queryable } from './sql.js'

export interface JobCount { upstream: string, status: string, count: number }

/**
 * One grouped count over `jobs`, by the status every read shows (a completed job past `expiresAt` counts as
 * expired, as GET /jobs/{id} says, before the sweeper marks its row). Job rows are kept until JOB_RETENTION_DAYS,
 * so this reads the whole table: fine at a scrape every 15–60 s for up to a few million jobs.
 */
export async function countJobs (db: Queryable): Promise<JobCount[]> {
  const { rows } = await query<{ upstream: string, status: string, count: string }>(db, sql`
    SELECT upstream, ${statusAsRead}::text AS status, count(*) AS count FROM jobs GROUP BY 1, 2`)
  return rows.map(r => ({ upstream: r.upstream, status: r.status, count: Number(r.count) }))
}
