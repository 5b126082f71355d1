/**
 * The HTTP bodies of results, defined once: an NDJSON chunk and the JSON page envelope, each built in the bytes of
 * a batch read from the database (db/sql/result-stream.ts), records spliced in as stored, never parsed.
 */
import type { RecordBatch } from '../domain/results.js'

const LF = 10
const CR = 13
const SPACE = 32
const COMMA = 0x2c

/**
 * Moves the batch's records to the front of its own buffer, `head` before them, `separator` after each (or between
 * them when `between`), and returns where the last one ended. Every record's header in the COPY data is 22 bytes
 * (field count and three lengths, page, position) and the COPY header 19 before the first, so each record lands
 * no later than where it was read from. Compacting in place allocates nothing: every megabyte of Buffers a batch
 * allocates brings the next scavenge nearer, and in the bench's NDJSON stream garbage collection was the largest
 * cost after the socket.
 */
function compact (batch: RecordBatch, head: Buffer | null, separator: number, between: boolean): number {
  const { data, starts, ends } = batch
  let at = head === null ? 0 : head.copy(data, 0)
  for (let i = 0; i < starts.length; i++) {
    if (between && i > 0) data[at++] = separator
    const start = starts[i] as number
    const end = ends[i] as number
    if (at !== start) data.copyWithin(at, start, end)
    at += end - start
    if (!between) data[at++] = separator
  }
  return at
}

/**
 * The batch as NDJSON: each record's bytes and a newline. A newline inside a JSON value can only be whitespace
 * between tokens (strings escape theirs), so a pretty-printed upstream record is folded onto one line, CR and LF
 * becoming spaces, without changing what it says. Built in the batch's own buffer, so a batch makes one response.
 */
export function ndjsonChunk (batch: RecordBatch): Buffer {
  const { starts, ends } = batch
  const out = batch.data.subarray(0, compact(batch, null, LF, false))
  // No CR is ours: every one found is a record's.
  for (let i = out.indexOf(CR); i !== -1; i = out.indexOf(CR, i + 1)) out[i] = SPACE
  // LFs come back in order, so each is either the next record's terminator or inside that record.
  let record = 0
  let terminator = (ends[0] as number) - (starts[0] as number)
  for (let i = out.indexOf(LF); i !== -1; i = out.indexOf(LF, i + 1)) {
    if (i !== terminator) {
      out[i] = SPACE
      continue
    }
    record++
    if (record < starts.length) terminator += (ends[record] as number) - (starts[record] as number) + 1
  }
  return out
}

/**
 * The first `count` records of the batch as a JSON page: `{"data":[r1,r2,…],"nextCursor":…,"total":…}`, each
 * record's bytes as stored (JSON allows raw line breaks between tokens). Built in the batch's own buffer when the
 * envelope fits there (it does from a few records on), so a batch makes one response.
 */
export function jsonPage (batch: RecordBatch, count: number, nextCursor: string | null, total: number): Buffer {
  const page: RecordBatch = { ...batch, starts: batch.starts.slice(0, count), ends: batch.ends.slice(0, count) }
  const head = Buffer.from('{"data":[')
  const tail = Buffer.from(`],"nextCursor":${JSON.stringify(nextCursor)},"total":${total}}`)
  let size = head.length + tail.length + Math.max(0, count - 1)
  for (let i = 0; i < count; i++) size += (page.ends[i] as number) - (page.starts[i] as number)
  if (size > batch.data.length) {
    // A page of one or two short records: the envelope is longer than the COPY framing it replaces.
    page.data = Buffer.concat([batch.data, Buffer.alloc(size - batch.data.length)])
  }
  const at = compact(page, head, COMMA, true)
  return page.data.subarray(0, at + tail.copy(page.data, at))
}
