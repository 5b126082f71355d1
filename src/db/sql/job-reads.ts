/**
 * Jobs as clients read them: GET /jobs/{id} (and every route that first looks the job up) and GET /jobs. Each row
 * carries its status as read (see statusAsRead in expiry.ts) and how long it has until `expiresAt`, both judged by
 * the database in the same statement, so a job's view, its results' 410 and the view cache agree on one clock.
 */
import type { JobStatus } from '../../generated/prisma/client.js'
import { statusAsRead } from './expiry.js'
import { jobFieldColumns } from './jobs.js'
import type { JobRead } from '../../domain/job.js'
import { query, sql, type Queryable } from './sql.js'

const jobReadColumns = sql`${jobFieldColumns}, ${statusAsRead} AS status,
  (extract(epoch FROM expires_at - now()) * 1000)::float8 AS "msToExpiry"`

/** A client's job by id, as one named statement: each pooled connection parses and plans it once. */
const clientJobText = `SELECT ${jobReadColumns.toQuery().text} FROM jobs WHERE id = $1 AND client_id = $2`

/**
 * The job `id` if it belongs to `clientId`, else null (another client's job is as unknown as a missing one).
 * `id` must be a UUID: PostgreSQL refuses anything else. Every poll reads this, so a write job's payload (which
 * may be tens of MB) is left in the database.
 */
export async function findClientJob (db: Queryable, clientId: string, id: string): Promise<JobRead | null> {
  const { rows } = await db.query<JobRead>({ name: 'find-client-job', text: clientJobText, values: [id, clientId] })
  return rows[0] ?? null
}

/** A page of GET /jobs: how many, after which job (the previous page's last), and the filters. */
export interface JobListQuery {
  limit: number
  before: { createdAt: Date, id: string } | null
  status?: JobStatus | undefined
  upstream?: string | undefined
}

/**
 * The client's jobs, newest first, after `before` (a keyset cursor). The status filter matches the status as
 * read: `completed` leaves out a job past its `expiresAt`, `expired` takes it in, sweeper or not.
 */
export async function listClientJobs (db: Queryable, clientId: string, q: JobListQuery): Promise<JobRead[]> {
  const conditions = [sql`client_id = ${clientId}`]
  if (q.status !== undefined) conditions.push(sql`${statusAsRead} = ${q.status}::"JobStatus"`)
  if (q.upstream !== undefined) conditions.push(sql`upstream = ${q.upstream}`)
  if (q.before !== null) conditions.push(sql`(created_at, id) < (${q.before.createdAt}::timestamptz, ${q.before.id}::uuid)`)
  const where = conditions.reduce((all, c) => sql`${all} AND ${c}`)
  const { rows } = await query<JobRead>(db, sql`
    SELECT ${jobReadColumns} FROM jobs WHERE ${where}
    ORDER BY created_at DESC, id DESC
    LIMIT ${q.limit}`)
  return rows
}
