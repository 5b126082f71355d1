/**
 * Results: written a page at a time together with the job's checkpoint (one transaction), read by keyset
 * (page, position) so a cursor page and an NDJSON stream cost the same at any depth.
 */
import type pg from 'pg'
import { query, sql, transaction, type Queryable } from './sql.js'

/** The job no longer belongs to this worker (lease lost or job cancelled): its writes are refused. */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError'
}

/** Progress columns an adapter may set; `records` is counted here from the rows actually inserted. */
export interface PageProgress {
  pagesDone?: number | undefined
  pagesTotal?: number | null | undefined
  percent?: number | null | undefined
  succeeded?: number | null | undefined
  failed?: number | null | undefined
}

/**
 * Stores one page's records and the new checkpoint atomically. A page stored before keeps its rows
 * (ON CONFLICT DO NOTHING), so replaying a page after a restart never duplicates a record.
 * Throws {@link LeaseLostError} when `workerId` no longer holds the job.
 */
export async function savePage (pool: pg.Pool, input: {
  jobId: string
  workerId: string
  page: number | null
  records: readonly string[]
  checkpoint: unknown
  progress: PageProgress
}): Promise<number> {
  return transaction(pool, async client => {
    // Locking the job row fences the write and orders concurrent pages of one job.
    const owned = await query(client, sql`
      SELECT 1 FROM jobs WHERE id = ${input.jobId} AND lease_owner = ${input.workerId} AND status = 'running'
      FOR UPDATE`)
    if (owned.rowCount !== 1) throw new LeaseLostError(`job ${input.jobId} is no longer held by this worker`)
    const inserted = input.page === null ? 0 : await insertRecords(client, input.jobId, input.page, input.records)
    const p = input.progress
    await query(client, sql`
      UPDATE jobs SET checkpoint = ${JSON.stringify(input.checkpoint)}::jsonb, records = records + ${inserted},
        pages_done = coalesce(${p.pagesDone ?? null}::int, pages_done),
        pages_total = CASE WHEN ${p.pagesTotal === undefined} THEN pages_total ELSE ${p.pagesTotal ?? null}::int END,
        percent = CASE WHEN ${p.percent === undefined} THEN percent ELSE ${p.percent ?? null}::float8 END,
        succeeded = CASE WHEN ${p.succeeded === undefined} THEN succeeded ELSE ${p.succeeded ?? null}::int END,
        failed = CASE WHEN ${p.failed === undefined} THEN failed ELSE ${p.failed ?? null}::int END
      WHERE id = ${input.jobId}`)
    return inserted
  })
}

/** Inserts one page's records (a page stored before keeps its rows); returns how many rows were new. */
export async function insertRecords (db: Queryable, jobId: string, page: number, records: readonly string[]): Promise<number> {
  if (records.length === 0) return 0
  const result = await query(db, sql`
    INSERT INTO job_results (job_id, page, position, record)
    SELECT ${jobId}::uuid, ${page}::int, (t.ord - 1)::int, t.record
    FROM unnest(${records}::text[]) WITH ORDINALITY AS t(record, ord)
    ON CONFLICT DO NOTHING`)
  return result.rowCount ?? 0
}

/** Where a reader stands in a job's results: after (page, position). */
export interface ResultPosition { page: number, position: number }

/** Up to `limit` records after `after` (from the start when null), in (page, position) order. */
export async function readResults (db: Queryable, jobId: string, after: ResultPosition | null, limit: number): Promise<Array<ResultPosition & { record: string }>> {
  const from = after ?? { page: -1, position: -1 }
  const { rows } = await query<ResultPosition & { record: string }>(db, sql`
    SELECT page, position, record FROM job_results
    WHERE job_id = ${jobId} AND (page, position) > (${from.page}::int, ${from.position}::int)
    ORDER BY page, position
    LIMIT ${limit}`)
  return rows
}

/** Every record of a job, in order, fetched in batches so memory stays flat however large the job. */
export async function * streamResults (db: Queryable, jobId: string, batchSize = 2000): AsyncGenerator<string> {
  let after: ResultPosition | null = null
  for (;;) {
    const rows = await readResults(db, jobId, after, batchSize)
    for (const row of rows) yield row.record
    const last = rows.at(-1)
    if (last === undefined || rows.length < batchSize) return
    after = { page: last.page, position: last.position }
  }
}

/** Deletes up to `batchSize` result rows of one job; returns how many went. */
export async function deleteResultsBatch (db: Queryable, jobId: string, batchSize: number): Promise<number> {
  const { rowCount } = await query(db, sql`
    DELETE FROM job_results WHERE ctid IN (
      SELECT ctid FROM job_results WHERE job_id = ${jobId} LIMIT ${batchSize})`)
  return rowCount ?? 0
}
