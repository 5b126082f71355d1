/**
 * Reading a page of records whichever way an adapter handed it over (contract/adapter.ts, PageRecords): as a list of
 * records, or as spans of one buffer. Pure; what the engine's checks, the page store and the loop guard share.
 */
import type { PageRecords, RecordSpans, RecordText } from './adapter.js'

export function isSpans (records: PageRecords): records is RecordSpans {
  return !Array.isArray(records)
}

/** Record i's length in UTF-8 bytes. */
export function recordBytes (records: PageRecords, i: number): number {
  if (isSpans(records)) return (records.ends[i] as number) - (records.starts[i] as number)
  const record = (records as readonly RecordText[])[i] as RecordText
  return typeof record === 'string' ? Buffer.byteLength(record) : record.byteLength
}

/** Record i: its text, or a view of its bytes (for a few records at a time: each view is an object). */
export function recordAt (records: PageRecords, i: number): RecordText {
  if (isSpans(records)) return records.bytes.subarray(records.starts[i], records.ends[i])
  return (records as readonly RecordText[])[i] as RecordText
}

/** Writes record i's UTF-8 bytes into `target` at `at`; returns how many (the target has room: see recordBytes). */
export function writeRecord (records: PageRecords, i: number, target: Buffer, at: number): number {
  if (isSpans(records)) {
    const start = records.starts[i] as number
    const end = records.ends[i] as number
    // Buffer's copy takes offsets: no view of the record is made.
    if (Buffer.isBuffer(records.bytes)) records.bytes.copy(target, at, start, end)
    else target.set(records.bytes.subarray(start, end), at)
    return end - start
  }
  const record = (records as readonly RecordText[])[i] as RecordText
  if (typeof record === 'string') return target.write(record, at)
  target.set(record, at)
  return record.byteLength
}

/** The bytes of all records together (what a page holds in memory until it is saved). */
export function pageBytes (records: PageRecords): number {
  let n = 0
  for (let i = 0; i < records.length; i++) n += recordBytes(records, i)
  return n
}
