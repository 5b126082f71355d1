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

/** Most rows one INSERT carries (a power of two): 1027 parameters, far below PostgreSQL's 65 535. */
const MAX_INSERT_ROWS = 1024
const insertTexts = new Map<number, string>()

/**
 * `rows` records as one parameter each, at positions $3 + 0, $3 + 1, …: pg sends text parameters as they are,
 * where one text[] parameter costs an escaping pass over every record here and an array parse in the server
 * (together about a third of the insert's CPU). Built from a row count only, never from input.
 */
function insertText (rows: number): string {
  let text = insertTexts.get(rows)
  if (text === undefined) {
    const values = Array.from({ length: rows }, (_, i) => `($1::uuid, $2::int, $3::int + ${i}, $${i + 4}::text)`).join(', ')
    text = `INSERT INTO job_results (job_id, page, position, record) VALUES ${values} ON CONFLICT DO NOTHING`
    insertTexts.set(rows, text)
  }
  return text
}

/**
 * Inserts one page's records (a page stored before keeps its rows); returns how many rows were new. Records go
 * in chunks of power-of-two sizes, each a named statement, so a connection prepares at most 11 of them and
 * PostgreSQL parses and plans each once per connection instead of once per page.
 */
export async function insertRecords (db: Queryable, jobId: string, page: number, records: readonly string[]): Promise<number> {
  let inserted = 0
  for (let from = 0; from < records.length;) {
    let rows = MAX_INSERT_ROWS
    while (rows > records.length - from) rows >>= 1
    const result = await db.query({
      name: `insert-results-${rows}`,
      text: insertText(rows),
      values: [jobId, page, from, ...records.slice(from, from + rows)],
    })
    inserted += result.rowCount ?? 0
    from += rows
  }
  return inserted
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

/**
 * Every record of a job, in order, a batch at a time, so memory stays flat however large the job. The next batch
 * is read while the caller handles the current one: the database and the client's socket work at the same time
 * instead of taking turns. At most two batches are held.
 */
export async function * streamResultBatches (db: Queryable, jobId: string, batchSize = 2000): AsyncGenerator<string[]> {
  const read = (after: ResultPosition | null) => {
    const rows = readResults(db, jobId, after, batchSize)
    // A reader that stops early (the client went away) leaves a read in flight: its failure is nobody's to handle.
    rows.catch(() => {})
    return rows
  }
  let next: ReturnType<typeof read> | null = read(null)
  while (next !== null) {
    const rows: Array<ResultPosition & { record: string }> = await next
    const last = rows.at(-1)
    next = last === undefined || rows.length < batchSize ? null : read({ page: last.page, position: last.position })
    if (rows.length > 0) yield rows.map(row => row.record)
  }
}

/** Every record of a job, in order, one at a time (see {@link streamResultBatches}). */
export async function * streamResults (db: Queryable, jobId: string, batchSize = 2000): AsyncGenerator<string> {
  for await (const batch of streamResultBatches(db, jobId, batchSize)) yield * batch
}

/** Deletes up to `batchSize` result rows of one job; returns how many went. */
export async function deleteResultsBatch (db: Queryable, jobId: string, batchSize: number): Promise<number> {
  const { rowCount } = await query(db, sql`
    DELETE FROM job_results WHERE ctid IN (
      SELECT ctid FROM job_results WHERE job_id = ${jobId} LIMIT ${batchSize})`)
  return rowCount ?? 0
}
