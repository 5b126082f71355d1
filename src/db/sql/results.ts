/**
 * Results: written a page at a time together with the job's checkpoint (one transaction), one row of result_pages
 * per page (or per part of a large one); deleted in batches by the sweeper. Reading them is result-stream.ts.
 */
import { isUtf8 } from 'node:buffer'
import type pg from 'pg'
import type { PageRecords } from '../../contract/adapter.js'
import { recordBytes, writeRecord } from '../../contract/records.js'
import { CODEC_PLAIN, packBody } from './body-codec.js'
import { query, sql, transaction, type Queryable } from './sql.js'
import { JobCancelledError, LeaseLostError } from '../../domain/errors.js'
import { BufferPool } from '../../lib/buffer-pool.js'

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
 * {@link insertParts}), so replaying a page after a restart never duplicates a record. The page is cut into parts
 * and compressed before the transaction begins, so the job's row is locked only while the rows go in.
 * Throws {@link JobCancelledError} when the job was cancelled, {@link LeaseLostError} when `workerId` no longer holds
 * it otherwise.
 */
export async function savePage (pool: pg.Pool, input: {
  jobId: string
  workerId: string
  page: number | null
  records: PageRecords
  checkpoint: unknown
  progress: PageProgress
}): Promise<number> {
  const parts = input.page === null ? [] : await packParts(input.page, input.records)
  return transaction(pool, async client => {
    // A page's commit does not wait for its WAL to reach disk (PostgreSQL writes it within a few hundred ms). If
    // PostgreSQL itself crashed in that window, the page and the checkpoint naming it would be lost together, and
    // the resumed job would fetch that page again: never a gap or a duplicate. The job's completion is committed
    // synchronously, which flushes every page before it. Waiting for a flush per page cut ingest by a fifth.
    await client.query('SET LOCAL synchronous_commit = off')
    // Locking the job row fences the write and orders concurrent pages of one job. Refused, it says why: the
    // cancel's notification may reach the worker after this write, and an adapter acts on a cancel (FHIR DELETEs).
    const { rows: [job] } = await query<{ status: string, mine: boolean }>(client, sql`
      SELECT status, lease_owner IS NOT DISTINCT FROM ${input.workerId} AS mine FROM jobs WHERE id = ${input.jobId} FOR UPDATE`)
    if (job?.status === 'cancelled') throw JobCancelledError.of(input.jobId)
    if (job?.status !== 'running' || !job.mine) throw new LeaseLostError(`job ${input.jobId} is no longer held by this worker`)
    const inserted = input.page === null ? 0 : await insertParts(client, input.jobId, input.page, parts)
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

/** A part of a page holds records up to this many bytes (a larger record alone): no row or read holds more than a few MB. */
export const PART_MAX_BYTES = 1024 * 1024

const LF = 10
const CR = 13
/** PostgreSQL's type oid of int4, as a binary int4[] names its elements. */
const INT4_OID = 23

/** One row of result_pages, ready to insert: `ends` in PostgreSQL's binary int4[] format, `body` the text's bytes. */
export interface PagePart { first: number, count: number, plain: boolean, ends: Buffer, body: Buffer }

/**
 * Buffers a part's body is built in, kept for the next page once PostgreSQL has taken them (lib/buffer-pool.ts says
 * why). Pages are saved one at a time per job, a few jobs at once: a few, and none over 2 MB.
 */
const partBodies = new BufferPool(8, 2 * 1024 * 1024)

/**
 * A page's records as result_pages rows: each record's bytes as given, a line feed after each, split into parts of at
 * most {@link PART_MAX_BYTES} (a record larger than that alone). Record i of a part ends at `ends[i]` (exclusive; the
 * next starts one after, past the line feed). `plain`: no record of the part holds a CR or LF, so the body is NDJSON
 * as it is. The bodies are views of reused buffers, given back by {@link packParts} and {@link insertParts}.
 */
export function pageParts (records: PageRecords, maxPartBytes = PART_MAX_BYTES): PagePart[] {
  const parts: PagePart[] = []
  for (let from = 0; from < records.length;) {
    let size = recordBytes(records, from) + 1
    let to = from + 1
    for (; to < records.length; to++) {
      const next = recordBytes(records, to) + 1
      if (size + next > maxPartBytes) break
      size += next
    }
    const body = partBodies.take(size)
    const ends = Buffer.allocUnsafe(20 + 8 * (to - from))
    ends.writeInt32BE(1, 0) // dimensions
    ends.writeInt32BE(0, 4) // no NULLs
    ends.writeInt32BE(INT4_OID, 8)
    ends.writeInt32BE(to - from, 12) // length of the dimension
    ends.writeInt32BE(1, 16) // its lower bound
    let at = 0
    let plain = true
    for (let i = from; i < to; i++) {
      const start = at
      at += writeRecord(records, i, body, at)
      body[at] = LF
      // The first line feed from the record's start is its terminator unless the record holds one.
      if (plain && body.indexOf(LF, start) !== at) plain = false
      const e = 20 + 8 * (i - from)
      ends.writeInt32BE(4, e)
      ends.writeInt32BE(at, e + 4)
      at++
    }
    if (plain && body.indexOf(CR) !== -1) plain = false
    parts.push({ first: from, count: to - from, plain, ends, body })
    from = to
  }
  return parts
}

/**
 * A part as stored: where its records are in its page, its text's length and codec, and the body that holds the text
 * (body-codec.ts). `text`: the reused buffer of a part stored as it is, given back once PostgreSQL has it.
 */
export interface PackedPart {
  first: number
  count: number
  plain: boolean
  ends: Buffer
  bytes: number
  codec: number
  stored: Buffer
  text: Buffer | null
}

/**
 * A page's records as the rows to store: cut into parts ({@link pageParts}), each checked and compressed (on
 * libuv's pool, the parts at once). Stored as bytes and served as JSON text, a part that is not UTF-8 or holds a
 * NUL byte is refused, and its page with it, as a text column refused it (the upstreams' scanners never pass one).
 * A compressed part's text buffer serves the next page at once.
 */
export async function packParts (page: number, records: PageRecords): Promise<PackedPart[]> {
  const parts = pageParts(records)
  for (const part of parts) {
    if (!isUtf8(part.body) || part.body.indexOf(0) !== -1) throw new Error(`page ${page} holds a record that is not UTF-8 text without NUL bytes`)
  }
  return await Promise.all(parts.map(async ({ first, count, plain, ends, body: text }) => {
    const { codec, body } = await packBody(text)
    if (codec === CODEC_PLAIN) return { first, count, plain, ends, bytes: text.length, codec, stored: body, text }
    partBodies.give(text)
    return { first, count, plain, ends, bytes: text.length, codec, stored: body, text: null }
  }))
}

/**
 * Stores one page's records (at positions 0..n-1) unless that page is stored already, and returns how many records
 * are new: {@link packParts}, then {@link insertParts}, inside the caller's transaction.
 */
export async function insertRecords (db: pg.PoolClient, jobId: string, page: number, records: PageRecords): Promise<number> {
  return await insertParts(db, jobId, page, await packParts(page, records))
}

/**
 * Stores a page's packed parts unless that page is stored already, and returns how many records are new. Pages are
 * only ever written whole, inside the caller's transaction, so "page present" means "every record present": a
 * replayed page (a restart, a duplicate webhook) adds nothing and keeps the first copy. One row per part; each goes
 * in as binary parameters, never escaped. Gives the parts' buffers back once PostgreSQL has them.
 */
export async function insertParts (db: pg.PoolClient, jobId: string, page: number, parts: readonly PackedPart[]): Promise<number> {
  let records = 0
  const stored = parts.length === 0 || (await query<{ stored: boolean }>(db, sql`
    SELECT EXISTS (SELECT 1 FROM result_pages WHERE job_id = ${jobId} AND page = ${page}) AS stored`)).rows[0]?.stored === true
  if (!stored) {
    for (const part of parts) {
      await query(db, sql`
        INSERT INTO result_pages (job_id, page, first, count, plain, ends, codec, bytes, body)
        VALUES (${jobId}, ${page}, ${part.first}, ${part.count}, ${part.plain}, ${part.ends}, ${part.codec}, ${part.bytes}, ${part.stored})`)
      records += part.count
    }
  }
  // Every statement was answered, so every byte has left the socket: the buffers can serve the next page. After a
  // failure they are dropped instead, as a write of them may still be queued.
  for (const part of parts) if (part.text !== null) partBodies.give(part.text)
  return records
}

/** Deletes up to `batchSize` stored pages (rows of result_pages) of one job; returns how many went, and their records. */
export async function deleteResultsBatch (db: Queryable, jobId: string, batchSize: number): Promise<{ pages: number, records: number }> {
  const { rows } = await query<{ pages: number, records: number }>(db, sql`
    WITH gone AS (
      DELETE FROM result_pages WHERE ctid IN (
        SELECT ctid FROM result_pages WHERE job_id = ${jobId} LIMIT ${batchSize}
        FOR UPDATE SKIP LOCKED)
      RETURNING count)
    SELECT count(*)::int AS pages, coalesce(sum(count), 0)::int AS records FROM gone`)
  return rows[0] ?? { pages: 0, records: 0 }
}
