/**
 * Reading results as bytes (the HTTP bodies built from them are the API's: api/result-bodies.ts). Records are the
 * upstream's JSON text and leave the gateway unchanged, so they are never decoded into JS strings: each batch is
 * read with `COPY (SELECT …) TO STDOUT (FORMAT binary)` from result_pages, and every record is a slice of the bytes
 * PostgreSQL sent. A stored page is one row (a large one a few), so a batch is one or a few rows whatever its depth.
 *
 * Batches are read by keyset (page, first), so a batch costs the same at any depth. A batch is read whole before
 * anything is written to a client: a pooled connection is held only for the COPY itself, never while a slow client
 * reads. A batch ends at a number of records or of bytes, whichever comes first; PostgreSQL picks the rows that hold
 * them (from the rows' record counts and lengths, read without reading a body), the gateway cuts the records. Bodies
 * the gateway compressed (body-codec.ts) arrive as PostgreSQL stores them and are decompressed here, off the event
 * loop, after the connection has gone back.
 */
import type pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import { CODEC_DEFLATE, CODEC_PLAIN, unpackBody } from './body-codec.js'
import { COPY_SIGNATURE, assertUuid } from './copy-format.js'
import { query, sql } from './sql.js'
import { CopyFormatError } from '../../domain/errors.js'
import { BufferPool } from '../../lib/buffer-pool.js'
import { RECORD_HEADROOM, type BatchSize, type RecordBatch, type ResultPosition } from '../../domain/results.js'

const isInt4 = (n: number): boolean => Number.isInteger(n) && n >= -2_147_483_648 && n <= 2_147_483_647

/** Rows a first read asks for (pages of a few records need more: the read is repeated with four times as many). */
const FIRST_ROWS = 4
const LF = 10

/**
 * The COPY statement of one batch: at most `rows` + 1 rows of result_pages after `after`. COPY takes no bind
 * parameters, so the values are written into the text: the job id only after it is checked to be a UUID, the numbers
 * only when they are integers in range. Nothing else is interpolated.
 *
 * A row is kept (its records and body sent) while the records and bytes before it, counted from the cursor, are
 * under `limit` and `maxBytes` (the first always). The first row that is not kept comes too, with NULL
 * `plain`, `codec`, `bytes`, `ends` and `body`: it says that more follows without costing its bytes. `skip` is how many
 * records of the first row the cursor is past. A row's text length is its `bytes`, whatever its body's codec.
 */
export function batchStatement (jobId: string, after: ResultPosition | null, size: BatchSize, rows: number, lastPage: number | null = null): string {
  assertUuid(jobId)
  if (lastPage !== null && !isInt4(lastPage)) throw new Error('last page is not an int4')
  const from = after ?? { page: -1, position: -1 }
  const { limit, maxBytes } = size
  if (!isInt4(from.page) || !isInt4(from.position) || from.position === 2_147_483_647) throw new Error('result position is not a pair of int4')
  if (!Number.isInteger(limit) || limit < 1 || limit > 1_000_000) throw new Error('batch limit out of range')
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new Error('batch byte cap out of range')
  if (!Number.isInteger(rows) || rows < 1 || rows > 1_000_000) throw new Error('batch rows out of range')
  const next = from.position + 1
  return `COPY (SELECT page, first, skip, CASE WHEN keep THEN plain END, CASE WHEN keep THEN codec END,
      CASE WHEN keep THEN bytes END, CASE WHEN keep THEN ends END, CASE WHEN keep THEN body END
    FROM (SELECT *, lag(keep, 1, true) OVER (ORDER BY page, first) AS kept_before
      FROM (SELECT page, first, skip, plain, codec, bytes, ends, body,
          sum(n) OVER w - n < ${limit} AND (sum(n) OVER w = n OR sum(b) OVER w - b < ${maxBytes}) AS keep
        FROM (SELECT page, first, skip, plain, codec, bytes, ends, body, count - skip AS n,
            bytes - count - CASE WHEN skip > 0 THEN ends[skip] + 1 - skip ELSE 0 END AS b
          FROM (SELECT page, first, count, plain, codec, bytes, ends, body,
              CASE WHEN page = ${from.page} THEN greatest(0, ${next} - first) ELSE 0 END AS skip
            FROM result_pages
            WHERE job_id = '${jobId}'::uuid AND page >= ${from.page} AND (page > ${from.page} OR first + count > ${next})${lastPage === null ? '' : ` AND page <= ${lastPage}`}
            ORDER BY page, first LIMIT ${rows + 1}) AS s) AS t
        WINDOW w AS (ORDER BY page, first ROWS UNBOUNDED PRECEDING)) AS k) AS o
    WHERE keep OR kept_before
    ORDER BY page, first) TO STDOUT (FORMAT binary)`
}

/**
 * A row that gave the batch records: `at`, `length` where its body is in the COPY data, `bytes` its text's length,
 * its records the batch's `from` to `to - 1`. The offsets of a compressed row's records are into its text until
 * {@link unpackBatch} puts them in the batch's data.
 */
interface BatchRow { codec: number, at: number, length: number, bytes: number, from: number, to: number }

/**
 * A batch as read, before it is cut: `rows` came back, `cut` when the batch ended at its size, not at the rows.
 * `rows` of it gave records; `packed` when one of them is compressed, which {@link unpackBatch} must then undo.
 */
export interface ParsedBatch { batch: RecordBatch, rows: number, cut: boolean, given: BatchRow[], packed: boolean }

/**
 * Parses PostgreSQL's binary COPY output of (page int4, first int4, skip int4, plain bool, codec int2, bytes int4,
 * ends int4[], body bytea) rows (the 11-byte signature, int32 flags and int32 header-extension length; per tuple an int16 field
 * count, then per field an int32 length (-1 = NULL) and that many bytes; an int16 -1 as trailer) and cuts the batch:
 * records from the cursor on, up to `size`. bytea in binary COPY is the stored bytes unescaped, so a record's slice
 * of a plain body is exactly what was stored. A row with a NULL body may only be the last: the row after the batch
 * (see {@link batchStatement}), which sets `more`. Records are cut from `ends` alone; a compressed body's records are
 * checked against its text when {@link unpackBatch} has it.
 */
export function parseResultCopy (data: Buffer, size: BatchSize): ParsedBatch {
  const batch: RecordBatch = { data, starts: [], ends: [], pages: [], positions: [], runs: [], more: false }
  const given: BatchRow[] = []
  let packed = false
  let at = 0
  let rows = 0
  let cut = false
  let past = false
  let bytes = 0
  const need = (n: number): void => {
    if (n < 0 || at + n > data.length) throw new CopyFormatError(`COPY data ends early (offset ${at}, ${data.length} bytes)`)
  }
  need(COPY_SIGNATURE.length + 8)
  if (!data.subarray(0, COPY_SIGNATURE.length).equals(COPY_SIGNATURE)) throw new CopyFormatError('not binary COPY data')
  // Bit 16 of the flags says OIDs are included: never for a SELECT, and the tuples would have an extra field.
  if ((data.readInt32BE(COPY_SIGNATURE.length) & 0x10000) !== 0) throw new CopyFormatError('COPY data carries OIDs')
  const extension = data.readInt32BE(COPY_SIGNATURE.length + 4)
  at = COPY_SIGNATURE.length + 8
  need(extension)
  at += extension
  const int4Field = (): number => {
    need(8)
    if (data.readInt32BE(at) !== 4) throw new CopyFormatError('page, first and skip must be int4')
    const value = data.readInt32BE(at + 4)
    at += 8
    return value
  }
  /** A field's length, then `at` at its bytes; -1 for NULL. */
  const fieldLength = (): number => {
    need(4)
    const length = data.readInt32BE(at)
    at += 4
    if (length < -1) throw new CopyFormatError('a field has a negative length')
    need(Math.max(0, length))
    return length
  }
  for (;;) {
    need(2)
    const fields = data.readInt16BE(at)
    at += 2
    if (fields === -1) break
    if (fields !== 8) throw new CopyFormatError(`a tuple has ${fields} fields, expected 8`)
    if (past) throw new CopyFormatError('a row follows the one past the batch')
    rows++
    const page = int4Field()
    const first = int4Field()
    const skip = int4Field()
    const plainLength = fieldLength()
    if (plainLength === -1) {
      // The row past the batch: its codec, bytes, ends and body are NULL too.
      for (let f = 0; f < 4; f++) if (fieldLength() !== -1) throw new CopyFormatError('a row past the batch carries records')
      batch.more = true
      past = true
      continue
    }
    if (plainLength !== 1) throw new CopyFormatError('plain must be a bool')
    const plain = data[at] === 1
    at += 1
    if (fieldLength() !== 2) throw new CopyFormatError('codec must be an int2')
    const codec = data.readInt16BE(at)
    at += 2
    if (codec !== CODEC_PLAIN && codec !== CODEC_DEFLATE) throw new CopyFormatError(`unknown body codec ${codec}`)
    if (fieldLength() !== 4) throw new CopyFormatError('bytes must be an int4')
    const textLength = data.readInt32BE(at)
    at += 4
    // ends: int4[] in binary (dimensions, a NULLs flag, the element type, then per dimension its length and lower
    // bound, then per element an int32 length and the int32).
    const endsLength = fieldLength()
    if (endsLength === -1) throw new CopyFormatError('ends is NULL')
    const endsAt = at
    if (endsLength < 20) throw new CopyFormatError('ends is not a one-dimensional int4[] without NULLs')
    const dims = data.readInt32BE(at)
    const count = dims === 0 ? 0 : data.readInt32BE(at + 12)
    if (dims !== 1 || count < 1 || endsLength !== 20 + 8 * count) throw new CopyFormatError('ends is not a one-dimensional int4[] without NULLs')
    at += endsLength
    const bodyLength = fieldLength()
    if (bodyLength === -1) throw new CopyFormatError('body is NULL')
    const body = at
    at += bodyLength
    if (cut) {
      // The batch is full: this row's records are left for the next one.
      batch.more = true
      continue
    }
    // The text ends with its last record's line feed; a plain body is that text, in the COPY data, and deflate
    // cannot have shrunk one more than 1032 times (which bounds what inflating it may allocate).
    const lastEnd = data.readInt32BE(endsAt + 16 + 8 * count)
    if (lastEnd + 1 !== textLength || (codec === CODEC_PLAIN ? bodyLength !== textLength : textLength > 1032 * bodyLength + 64)) {
      throw new CopyFormatError('a body\'s length is not its text\'s')
    }
    const base = codec === CODEC_PLAIN ? body : 0
    const end = (i: number): number => {
      const e = data.readInt32BE(endsAt + 24 + 8 * i)
      if (e < 0 || e >= textLength || (codec === CODEC_PLAIN && data[body + e] !== LF)) throw new CopyFormatError('a record does not end at a line feed of its body')
      // Ends rise: a record ends after the line feed of the one before it (or at the body's start).
      if (i > 0 && e <= data.readInt32BE(endsAt + 24 + 8 * (i - 1))) throw new CopyFormatError('the ends of a body\'s records do not rise')
      return base + e
    }
    let start = skip === 0 ? base : end(skip - 1) + 1
    const run = { first: batch.starts.length, count: 0, plain }
    for (let i = skip; i < count; i++) {
      const stop = end(i)
      const length = stop - start
      if (batch.starts.length >= size.limit || (batch.starts.length > 0 && bytes + length > size.maxBytes)) {
        cut = true
        batch.more = true
        break
      }
      bytes += length
      batch.starts.push(start)
      batch.ends.push(stop)
      batch.pages.push(page)
      batch.positions.push(first + i)
      run.count++
      start = stop + 1
    }
    if (run.count > 0) {
      batch.runs.push(run)
      given.push({ codec, at: body, length: bodyLength, bytes: textLength, from: run.first, to: run.first + run.count })
      if (codec !== CODEC_PLAIN) packed = true
    }
  }
  if (at !== data.length) throw new CopyFormatError('bytes after the COPY trailer')
  return { batch, rows, cut, given, packed }
}

/** Bytes left after the records of an unpacked batch: a JSON page's tail (its cursor and total) fits in them. */
const ENVELOPE_TAIL_ROOM = 256

/**
 * The batch with every record in one buffer, its compressed rows decompressed: the records of each row, one row after
 * another, {@link RECORD_HEADROOM} bytes into a buffer of {@link batchBuffers} when large (given back by the batch's
 * `release`). The COPY data is then no longer read, and `done` is called.
 */
export async function unpackBatch (parsed: ParsedBatch, done: () => void): Promise<RecordBatch> {
  const { batch, given } = parsed
  // Settled, all of them, before anything fails: each inflate reads the COPY data until it ends.
  const settled = await Promise.allSettled(given.map(row => row.codec === CODEC_PLAIN
    ? null
    : unpackBody(batch.data.subarray(row.at, row.at + row.length), row.bytes)))
  const texts = settled.map(result => {
    if (result.status === 'rejected') throw result.reason
    return result.value
  })
  given.forEach((row, r) => {
    const text = texts[r]
    if (text == null) return
    // Each record ends at a line feed, and so does the one before the first (when the cursor skipped into the row).
    const start = batch.starts[row.from] as number
    if (start > 0 && text[start - 1] !== LF) throw new CopyFormatError('a record does not end at a line feed of its body')
    for (let i = row.from; i < row.to; i++) {
      if (text[batch.ends[i] as number] !== LF) throw new CopyFormatError('a record does not end at a line feed of its body')
    }
  })
  // Each row's records, from its first one's start to its last one's line feed, one row after another; room before
  // them for a JSON page's head (RECORD_HEADROOM) and after them for its tail, so that a page is built in place.
  const spans = given.map(row => [batch.starts[row.from] as number, (batch.ends[row.to - 1] as number) + 1] as const)
  const total = spans.reduce((sum, [from, to]) => sum + to - from, RECORD_HEADROOM + ENVELOPE_TAIL_ROOM)
  const pooled = total >= batchBuffers.minBytes && total <= batchBuffers.maxBytes
  const data = pooled ? batchBuffers.take(total) : Buffer.allocUnsafe(total)
  let out = RECORD_HEADROOM
  given.forEach((row, r) => {
    const [from, to] = spans[r] as readonly [number, number]
    ;(texts[r] ?? batch.data).copy(data, out, from, to)
    for (let i = row.from; i < row.to; i++) {
      batch.starts[i] = (batch.starts[i] as number) - from + out
      batch.ends[i] = (batch.ends[i] as number) - from + out
    }
    out += to - from
  })
  done()
  const unpacked: RecordBatch = { ...batch, data }
  if (pooled) unpacked.release = onceGiven(data)
  return unpacked
}

/** The chunks of a COPY TO stream, once it has ended. */
function drain (stream: NodeJS.ReadableStream): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => { chunks.push(chunk) })
    stream.once('end', () => { resolve(chunks) })
    // Stays attached after 'end': a connection lost between the last row and ReadyForQuery errors the query once
    // more, and an 'error' event with no listener would end the process. A settled promise ignores it.
    stream.on('error', reject)
  })
}

/**
 * The records after `after` (from the start when null), in (page, position) order, up to `size` (and on pages up to
 * `lastPage` when given), read on a connection of the pool that goes back as soon as the last byte is in. A
 * connection that failed is dropped.
 */
export async function readResultBatch (
  pool: pg.Pool, jobId: string, after: ResultPosition | null, size: BatchSize, lastPage: number | null = null
): Promise<RecordBatch> {
  return await unpackFetched(await fetchResultBatch(pool, jobId, after, size, lastPage))
}

/** A batch as its COPY came: cut, its compressed rows not yet inflated. `release` gives back the COPY data. */
interface FetchedBatch { parsed: ParsedBatch, release: () => void, pooled: boolean }

/** The COPY of a batch, parsed and cut: the first half of {@link readResultBatch}, which says what the batch is. */
async function fetchResultBatch (
  pool: pg.Pool, jobId: string, after: ResultPosition | null, size: BatchSize, lastPage: number | null
): Promise<FetchedBatch> {
  for (let rows = FIRST_ROWS; ; rows *= 4) {
    const { data, pooled } = await copyOut(pool, batchStatement(jobId, after, size, rows, lastPage))
    const parsed = parseResultCopy(data, size)
    // All rows asked for came back kept and the batch is not full: rows of a few records each. Asked again for more.
    if (parsed.cut || parsed.batch.more || parsed.rows <= rows) return { parsed, release: pooled ? onceGiven(data) : () => {}, pooled }
    if (pooled) batchBuffers.give(data) // never handed out
  }
}

/** The second half of {@link readResultBatch}: the batch's compressed rows inflated (off the event loop). */
async function unpackFetched ({ parsed, release, pooled }: FetchedBatch): Promise<RecordBatch> {
  if (!parsed.packed) {
    if (pooled) parsed.batch.release = release
    return parsed.batch
  }
  try {
    return await unpackBatch(parsed, release)
  } catch (err) {
    release()
    throw err
  }
}

/** Gives a buffer of {@link batchBuffers} back, once only: a second give-back after another reader took it would hand it out twice. */
function onceGiven (data: Buffer): () => void {
  let given = false
  return () => {
    if (!given) batchBuffers.give(data)
    given = true
  }
}

/**
 * Buffers a batch's COPY output is joined in, reused once the reader says the batch's bytes have left the process
 * (RecordBatch.release; lib/buffer-pool.ts says why). A batch holds about RESULT_BATCH_MAX_BYTES, plus the rest of
 * the row it ends in (a part is at most 1 MiB).
 */
const batchBuffers = new BufferPool(8, 4 * 1024 * 1024, 256 * 1024)

/**
 * The bytes of one COPY TO, on a pooled connection. Joined in a buffer of {@link batchBuffers} when they came in
 * several chunks of a size it serves (`pooled`).
 */
async function copyOut (pool: pg.Pool, statement: string): Promise<{ data: Buffer, pooled: boolean }> {
  const client = await pool.connect()
  // A checked-out client has no pool listener: without this one, a connection lost mid-COPY (a database restart,
  // PgBouncer closing it) is an unhandled 'error' event that ends the process. The COPY fails by itself too.
  let failed: Error | undefined
  const onError = (err: Error): void => { failed = err }
  client.on('error', onError)
  try {
    const chunks = await drain(client.query(copyTo(statement)))
    if (chunks.length === 1) return { data: chunks[0] as Buffer, pooled: false }
    let size = 0
    for (const chunk of chunks) size += chunk.length
    const pooled = size >= batchBuffers.minBytes && size <= batchBuffers.maxBytes
    const data = pooled ? batchBuffers.take(size) : Buffer.allocUnsafe(size)
    let at = 0
    for (const chunk of chunks) at += chunk.copy(data, at)
    return { data, pooled }
  } catch (err) {
    // Whatever went wrong, the connection's state is unknown (it may still be in COPY mode): drop it.
    failed ??= err instanceof Error ? err : new Error(String(err))
    throw err
  } finally {
    client.off('error', onError)
    client.release(failed)
  }
}

/**
 * The last page of a running job that may be read. Pages are numbered from 1 (JobContext.savePage) and saved whole,
 * but not always in order (DrChrono saves them as they arrive), so only pages 1..n with none missing are final: a
 * reader that went past a missing page would never see it filled in behind it. Null while page 1 is not stored. A
 * page saved empty leaves a gap too, which only holds readers back until the job has ended (then no bound applies).
 * `known`: pages 1..known are known to be readable already (a reader that follows the job), so only the pages after
 * them are looked at, and each look costs the pages saved since, not the whole job; null then when page known + 1 is
 * not stored.
 */
export async function readablePages (pool: pg.Pool, jobId: string, known = 0): Promise<number | null> {
  const { rows } = await query<{ last: number | null }>(pool, sql`
    SELECT max(page) AS last FROM (
      SELECT page, page - row_number() OVER (ORDER BY page) AS gap
      FROM (SELECT DISTINCT page FROM result_pages WHERE job_id = ${jobId} AND page > ${known}::int) AS p) AS s
    WHERE gap = ${known}::int`)
  return rows[0]?.last ?? null
}

/**
 * Every record of a job, in order, a batch at a time, so memory stays flat however large the job or its records.
 * The next batch is read while the caller handles the current one: the database and the client's socket work at
 * the same time instead of taking turns. The COPY of the batch after it starts as soon as the next one's COPY is in,
 * while the next one is still being inflated: the database and the inflating overlap too. At most two batches are
 * held, and the COPY data of a third.
 */
export async function * streamResultBatches (pool: pg.Pool, jobId: string, size: BatchSize): AsyncGenerator<RecordBatch> {
  // Set when the caller stops early (the client went away): no read starts after that.
  let stopped = false
  const fetch = (after: ResultPosition | null): Promise<FetchedBatch> => {
    const fetched = fetchResultBatch(pool, jobId, after, size, null)
    // A reader that stops early leaves up to two reads in flight: each releases its own connection, and their
    // failures are nobody's to handle.
    fetched.catch(() => {})
    return fetched
  }
  /** The fetch of the batch after `fetched` (null after the last batch), started once `fetched`'s COPY is in. */
  const fetchAfter = (fetched: Promise<FetchedBatch | null>): Promise<FetchedBatch | null> => {
    const after = fetched.then(async f => {
      const batch = f?.parsed.batch
      if (batch === undefined || !batch.more || stopped) return null
      const count = batch.starts.length
      return await fetch({ page: batch.pages[count - 1] as number, position: batch.positions[count - 1] as number })
    })
    after.catch(() => {})
    return after
  }
  const unpack = (fetched: Promise<FetchedBatch | null>): Promise<RecordBatch> => {
    const unpacked = fetched.then(async f => {
      if (f === null) throw new Error('no batch to unpack')
      return await unpackFetched(f)
    })
    unpacked.catch(() => {})
    return unpacked
  }
  const first = fetch(null)
  let next: Promise<RecordBatch> | null = unpack(first)
  let fetchedNext = fetchAfter(first)
  try {
    while (next !== null) {
      const batch: RecordBatch = await next
      // The next batch's COPY started when this one's came in; it is inflated once in, and the COPY of the one
      // after it starts then. The batch is yielded meanwhile.
      next = batch.more ? unpack(fetchedNext) : null
      fetchedNext = batch.more ? fetchAfter(fetchedNext) : Promise.resolve(null)
      if (batch.starts.length > 0) yield batch
    }
  } finally {
    stopped = true
  }
}
