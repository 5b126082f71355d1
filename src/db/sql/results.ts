/**
 * Results: written a page at a time together with the job's checkpoint (one transaction), by binary COPY; deleted
 * in batches by the sweeper. Reading them is result-stream.ts.
 */
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import type { RecordText } from '../../contract/adapter.js'
import { COPY_SIGNATURE, assertUuid } from './copy-format.js'
import { query, sql, transaction, type Queryable } from './sql.js'
import { LeaseLostError } from '../../domain/errors.js'

/** Progress columns an adapter may set; `records` is counted here from the rows actually inserted. */
export interface PageProgress {
  pagesDone?: number | undefined
  pagesTotal?: number | null | undefined
  percent?: number | null | undefined
  succeeded?: number | null | undefined
  failed?: number | null | undefined
}

/**
 * Stores one page's records and the new checkpoint atomically. A page stored before keeps its rows (see
 * {@link insertRecords}), so replaying a page after a restart never duplicates a record.
 * Throws {@link LeaseLostError} when `workerId` no longer holds the job.
 */
export async function savePage (pool: pg.Pool, input: {
  jobId: string
  workerId: string
  page: number | null
  records: readonly RecordText[]
  checkpoint: unknown
  progress: PageProgress
}): Promise<number> {
  return transaction(pool, async client => {
    // A page's commit does not wait for its WAL to reach disk (PostgreSQL writes it within a few hundred ms). If
    // PostgreSQL itself crashed in that window, the page and the checkpoint naming it would be lost together, and
    // the resumed job would fetch that page again: never a gap or a duplicate. The job's completion is committed
    // synchronously, which flushes every page before it. Waiting for a flush per page cut ingest by a fifth.
    await client.query('SET LOCAL synchronous_commit = off')
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

/** Per row: field count (2), then length-prefixed job_id (4 + 16), page (4 + 4), position (4 + 4), record (4 + n). */
const ROW_OVERHEAD = 2 + 20 + 8 + 8 + 4

/**
 * Buffers copyRows writes into, kept for the next page once a COPY has succeeded: a fresh few hundred KB per page
 * costs page faults, and glibc keeps much of what such buffers free. Only a few, and none over 4 MB, are kept.
 */
const spare: Buffer[] = []
const SPARE_MAX_COUNT = 8
const SPARE_MAX_BYTES = 4 * 1024 * 1024

function takeBuffer (size: number): Buffer {
  const i = spare.findIndex(b => b.length >= size)
  return i === -1 ? Buffer.allocUnsafe(Math.max(size, 64 * 1024)) : spare.splice(i, 1)[0] as Buffer
}

function giveBack (buf: Buffer): void {
  if (buf.buffer.byteLength <= SPARE_MAX_BYTES && spare.length < SPARE_MAX_COUNT) {
    spare.push(Buffer.from(buf.buffer, buf.byteOffset, buf.buffer.byteLength - buf.byteOffset))
  }
}

/**
 * One page's rows in PostgreSQL's binary COPY format: a record goes in as its UTF-8 bytes with a length in front,
 * so nothing is escaped here and nothing is parsed there (no SQL, no array literal, no quoting). The result may be
 * a view of a reused buffer: hand it to giveBack() only once PostgreSQL has taken it all.
 */
export function copyRows (jobId: string, page: number, records: readonly RecordText[]): Buffer {
  const id = Buffer.from(assertUuid(jobId).replaceAll('-', ''), 'hex')
  let size = COPY_SIGNATURE.length + 8 + 2
  for (const record of records) size += ROW_OVERHEAD + (typeof record === 'string' ? Buffer.byteLength(record) : record.length)
  const buf = takeBuffer(size).subarray(0, size)
  let at = COPY_SIGNATURE.copy(buf, 0)
  at = buf.writeInt32BE(0, at) // flags
  at = buf.writeInt32BE(0, at) // header extension length
  for (let position = 0; position < records.length; position++) {
    const record = records[position] as RecordText
    at = buf.writeInt16BE(4, at)
    at = buf.writeInt32BE(16, at)
    at += id.copy(buf, at)
    at = buf.writeInt32BE(4, at)
    at = buf.writeInt32BE(page, at)
    at = buf.writeInt32BE(4, at)
    at = buf.writeInt32BE(position, at)
    // Bytes are copied as they are; text is encoded in place (the size above was measured the same way, so it fits).
    let length = record.length
    if (typeof record === 'string') length = buf.write(record, at + 4)
    else buf.set(record, at + 4)
    at = buf.writeInt32BE(length, at)
    at += length
  }
  buf.writeInt16BE(-1, at)
  return buf
}

/**
 * Stores one page's records (at positions 0..n-1) unless that page is stored already, and returns how many rows
 * are new. Pages are only ever written whole, inside the caller's transaction, so "page present" means "every
 * record present": a replayed page (a restart, a duplicate webhook) adds nothing. The rows go in by
 * `COPY … FROM STDIN (FORMAT binary)`, PostgreSQL's cheapest way in.
 */
export async function insertRecords (db: pg.PoolClient, jobId: string, page: number, records: readonly RecordText[]): Promise<number> {
  if (records.length === 0) return 0
  const stored = await query<{ stored: boolean }>(db, sql`
    SELECT EXISTS (SELECT 1 FROM job_results WHERE job_id = ${jobId} AND page = ${page}) AS stored`)
  if (stored.rows[0]?.stored === true) return 0
  const copy = db.query(copyFrom('COPY job_results (job_id, page, position, record) FROM STDIN (FORMAT binary)'))
  const rows = copyRows(jobId, page, records)
  await pipeline(Readable.from([rows]), copy)
  // The COPY ended with PostgreSQL's answer, so every byte has left the socket: the buffer can serve the next page.
  // After a failure it is dropped instead, as a write of it may still be queued.
  giveBack(rows)
  return copy.rowCount
}

/** Deletes up to `batchSize` result rows of one job; returns how many went. */
export async function deleteResultsBatch (db: Queryable, jobId: string, batchSize: number): Promise<number> {
  const { rowCount } = await query(db, sql`
    DELETE FROM job_results WHERE ctid IN (
      SELECT ctid FROM job_results WHERE job_id = ${jobId} LIMIT ${batchSize}
      FOR UPDATE SKIP LOCKED)`)
  return rowCount ?? 0
}
