/**
 * The HTTP bodies of results, defined once: NDJSON chunks and the JSON page envelope, each built in the bytes of
 * a batch read from the database (db/sql/result-stream.ts), records spliced in as stored, never parsed.
 */
import type { RecordBatch } from '../domain/results.js'

const LF = 10
const CR = 13
const SPACE = 32
const COMMA = 0x2c

/**
 * Moves the batch's records to the front of its own buffer, `head` before them and `separator` between them, and
 * returns where the last one ended. Records lie side by side with a line feed after each, behind the COPY header
 * and each row's fields (or RECORD_HEADROOM bytes when unpacked), so with `head` no longer than what lies before
 * the first record, each record lands no later than where it was read from. Compacting in place allocates nothing:
 * every megabyte of Buffers a batch allocates brings the next scavenge nearer.
 */
function compact (batch: RecordBatch, head: Buffer, separator: number): number {
  const { data, starts, ends } = batch
  let at = head.copy(data, 0)
  for (let i = 0; i < starts.length; i++) {
    if (i > 0) data[at++] = separator
    const start = starts[i] as number
    const end = ends[i] as number
    if (at !== start) data.copyWithin(at, start, end)
    at += end - start
  }
  return at
}

/**
 * The batch as NDJSON: each record's bytes and a newline, as slices of the batch's data. Records are stored side by
 * side with a line feed after each (RecordBatch.runs), so a run is NDJSON as it lies, unless a record in it holds a
 * line break. A newline inside a JSON value can only be whitespace between tokens (strings escape theirs), so such a
 * pretty-printed record is folded onto its line in place, CR and LF becoming spaces, without changing what it says.
 */
export function ndjsonChunks (batch: RecordBatch): Buffer[] {
  const { data, starts, ends } = batch
  const out: Buffer[] = []
  for (const run of batch.runs) {
    const from = starts[run.first] as number
    const last = run.first + run.count - 1
    const bytes = data.subarray(from, (ends[last] as number) + 1)
    if (!run.plain) {
      for (let i = bytes.indexOf(CR); i !== -1; i = bytes.indexOf(CR, i + 1)) bytes[i] = SPACE
      // LFs come in order, so each is either the current record's terminator or inside that record.
      let record = run.first
      for (let i = bytes.indexOf(LF); i !== -1; i = bytes.indexOf(LF, i + 1)) {
        if (from + i === ends[record]) record++
        else bytes[i] = SPACE
      }
    }
    out.push(bytes)
  }
  return out
}

/**
 * The first `count` records of the batch as a JSON page: `{"data":[r1,r2,…],"nextCursor":…,"total":…}` (and
 * `"complete":…` when given: a partial read), each
 * record's bytes as stored (JSON allows raw line breaks between tokens). Built in the batch's own buffer when the
 * envelope fits there (it does from a few records on), so a batch makes one response.
 */
export function jsonPage (batch: RecordBatch, count: number, nextCursor: string | null, total: number, complete?: boolean): Buffer {
  const page: RecordBatch = { ...batch, starts: batch.starts.slice(0, count), ends: batch.ends.slice(0, count) }
  const head = Buffer.from('{"data":[')
  const tail = Buffer.from(`],"nextCursor":${JSON.stringify(nextCursor)},"total":${total}${complete === undefined ? '' : `,"complete":${complete}`}}`)
  let size = head.length + tail.length + Math.max(0, count - 1)
  for (let i = 0; i < count; i++) size += (page.ends[i] as number) - (page.starts[i] as number)
  // Records are compacted towards the front, so the head needs room before the first (RECORD_HEADROOM).
  const shift = Math.max(0, head.length - (page.starts[0] ?? head.length))
  if (size > batch.data.length || shift > 0) {
    // A page of one or two short records (the envelope is longer than the framing it replaces), or a batch without
    // room before its first record: built in a copy.
    page.data = Buffer.alloc(Math.max(size, batch.data.length + shift))
    batch.data.copy(page.data, shift)
    if (shift > 0) {
      page.starts = page.starts.map(s => s + shift)
      page.ends = page.ends.map(e => e + shift)
    }
  }
  const at = compact(page, head, COMMA)
  return page.data.subarray(0, at + tail.copy(page.data, at))
}
