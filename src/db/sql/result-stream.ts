/**
 * Reading results as bytes (the HTTP bodies built from them are the API's: api/result-bodies.ts). Records are the
 * upstream's JSON text and leave the gateway unchanged, so they are never decoded into JS strings: each batch is
 * read with `COPY (SELECT …) TO STDOUT (FORMAT binary)`, and every record is a slice of the bytes PostgreSQL sent.
 * pg's row parsing, the UTF-8 decode and the encode back for the socket were
 * most of the gateway's cost per record.
 *
 * Batches are read by keyset (page, position), so a batch costs the same at any depth. A batch is read whole before
 * anything is written to a client: a pooled connection is held only for the COPY itself, never while a slow client
 * reads. A batch ends at a number of records or of bytes, whichever comes first (PostgreSQL sums the records'
 * lengths), so memory per batch is bounded however large the records: 2000 records of 1 MB would be 2 GB.
 */
import type pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import { COPY_SIGNATURE, assertUuid } from './copy-format.js'
import { CopyFormatError } from '../../domain/errors.js'
import type { BatchSize, RecordBatch, ResultPosition } from '../../domain/results.js'

const isInt4 = (n: number): boolean => Number.isInteger(n) && n >= -2_147_483_648 && n <= 2_147_483_647

/**
 * The COPY statement of one batch. COPY takes no bind parameters, so the values are written into the text: the job
 * id only after it is checked to be a UUID, the numbers only when they are integers in range. Nothing else is
 * interpolated.
 *
 * Row n is a record when n <= limit and the bytes up to it fit in maxBytes (row 1 always: a record larger than the
 * cap is served alone). The first row that does not fit comes too, with a NULL record: it says that more follows
 * without costing its bytes. `octet_length` of a stored text reads its length from the TOAST header, no detoast.
 */
export function batchStatement (jobId: string, after: ResultPosition | null, size: BatchSize): string {
  assertUuid(jobId)
  const from = after ?? { page: -1, position: -1 }
  const { limit, maxBytes } = size
  if (!isInt4(from.page) || !isInt4(from.position)) throw new Error('result position is not a pair of int4')
  if (!Number.isInteger(limit) || limit < 1 || limit > 1_000_000) throw new Error('batch limit out of range')
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new Error('batch byte cap out of range')
  // One tuple per record. One tuple of arrays per batch (array_agg) was measured too: on a pooled connection it cost
  // PostgreSQL about 9 µs a record, against 1 µs for this, and saved the gateway nothing.
  return `COPY (SELECT page, position, CASE WHEN n <= ${limit} AND (n = 1 OR upto <= ${maxBytes}) THEN record END
    FROM (SELECT page, position, record, row_number() OVER w AS n, sum(octet_length(record)) OVER w AS upto
      FROM job_results
      WHERE job_id = '${jobId}'::uuid AND (page, position) > (${from.page}::int, ${from.position}::int)
      WINDOW w AS (ORDER BY page, position ROWS UNBOUNDED PRECEDING)
      ORDER BY page, position LIMIT ${limit + 1}) AS batch
    WHERE n <= 2 OR upto - octet_length(record) <= ${maxBytes}
    ORDER BY page, position) TO STDOUT (FORMAT binary)`
}

/**
 * Parses PostgreSQL's binary COPY output of (page int4, position int4, record text) rows: the 11-byte signature,
 * int32 flags and int32 header-extension length; per tuple an int16 field count, then per field an int32 length
 * (-1 = NULL) and that many bytes; an int16 -1 as trailer. Text in binary COPY is the column's bytes in the server
 * encoding (UTF-8 here), unescaped, so a record's slice is exactly what was stored. A NULL record may only be the
 * last tuple: the row after the batch (see {@link batchStatement}), which sets `more`.
 */
export function parseResultCopy (data: Buffer): RecordBatch {
  const batch: RecordBatch = { data, starts: [], ends: [], pages: [], positions: [], more: false }
  let at = 0
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
    if (data.readInt32BE(at) !== 4) throw new CopyFormatError('page and position must be int4')
    const value = data.readInt32BE(at + 4)
    at += 8
    return value
  }
  for (;;) {
    need(2)
    const fields = data.readInt16BE(at)
    at += 2
    if (fields === -1) break
    if (fields !== 3) throw new CopyFormatError(`a tuple has ${fields} fields, expected 3`)
    if (batch.more) throw new CopyFormatError('a record is NULL before the last tuple')
    const page = int4Field()
    const position = int4Field()
    need(4)
    const length = data.readInt32BE(at)
    at += 4
    if (length === -1) {
      batch.more = true
      continue
    }
    if (length < 0) throw new CopyFormatError('a record has a negative length')
    batch.pages.push(page)
    batch.positions.push(position)
    need(length)
    batch.starts.push(at)
    at += length
    batch.ends.push(at)
  }
  if (at !== data.length) throw new CopyFormatError('bytes after the COPY trailer')
  return batch
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
 * The records after `after` (from the start when null), in (page, position) order, up to `size`, read on a
 * connection of the pool that goes back as soon as the last byte is in. A connection that failed is dropped.
 */
export async function readResultBatch (pool: pg.Pool, jobId: string, after: ResultPosition | null, size: BatchSize): Promise<RecordBatch> {
  const statement = batchStatement(jobId, after, size)
  const client = await pool.connect()
  // A checked-out client has no pool listener: without this one, a connection lost mid-COPY (a database restart,
  // PgBouncer closing it) is an unhandled 'error' event that ends the process. The COPY fails by itself too.
  let failed: Error | undefined
  const onError = (err: Error): void => { failed = err }
  client.on('error', onError)
  try {
    const chunks = await drain(client.query(copyTo(statement)))
    return parseResultCopy(chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks))
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
 * Every record of a job, in order, a batch at a time, so memory stays flat however large the job or its records.
 * The next batch is read while the caller handles the current one: the database and the client's socket work at
 * the same time instead of taking turns. At most two batches are held.
 */
export async function * streamResultBatches (pool: pg.Pool, jobId: string, size: BatchSize): AsyncGenerator<RecordBatch> {
  const read = (after: ResultPosition | null, limit: number): Promise<RecordBatch> => {
    const batch = readResultBatch(pool, jobId, after, { limit, maxBytes: size.maxBytes })
    // A reader that stops early (the client went away) leaves a read in flight: it releases its own connection,
    // and its failure is nobody's to handle.
    batch.catch(() => {})
    return batch
  }
  let next: Promise<RecordBatch> | null = read(null, size.limit)
  while (next !== null) {
    const batch: RecordBatch = await next
    const count = batch.starts.length
    // A batch the byte cap ended asks for twice its records next time, not the full limit: PostgreSQL reads every
    // row up to the limit to sum their lengths, and with records of a megabyte that would be 2000 rows a batch.
    const limit = count < size.limit ? Math.min(size.limit, Math.max(16, 2 * count)) : size.limit
    next = batch.more ? read({ page: batch.pages[count - 1] as number, position: batch.positions[count - 1] as number }, limit) : null
    if (count > 0) yield batch
  }
}
