/** Jobs by upstream and status, read at each metrics scrape. */
import { query, sql, type Queryable } from './sql.js'

export interface JobCount { upstream: string, status: string, count: number }

/**
 * One grouped count over `jobs`. Job rows are kept after their results expire, so this reads the whole table:
 * fine at a scrape every 15–60 s for up to a few million jobs; beyond that, an index on (upstream, status)
 * lets Postgres answer from the index alone.
 */
export async function countJobs (db: Queryable): Promise<JobCount[]> {
  const { rows } = await query<{ upstream: string, status: string, count: string }>(db, sql`
    SELECT upstream, status::text AS status, count(*) AS count FROM jobs GROUP BY 1, 2`)
  return rows.map(r => ({ upstream: r.upstream, status: r.status, count: Number(r.count) }))
}
