/** A job's results as the layers hand them to each other: batches of records, as bytes, read by position. */

/** Where a reader stands in a job's results: after (page, position). */
export interface ResultPosition { page: number, position: number }

/**
 * Records of one batch, in (page, position) order: record i is `data[starts[i], ends[i])`, stored at
 * (`pages[i]`, `positions[i]`). A response is built in `data` itself (api/result-bodies.ts), so a batch makes
 * one response. `more`: records follow the batch's last one.
 */
export interface RecordBatch {
  /** The records' bytes, with at least {@link RECORD_HEADROOM} bytes before the first (a response is built in place). */
  data: Buffer
  starts: number[]
  ends: number[]
  pages: number[]
  positions: number[]
  /**
   * The batch's records as stored side by side: records `first` to `first + count - 1` are one after the other in
   * `data`, each followed by a line feed (the next starts one past it). `plain`: none of them holds a CR or LF.
   */
  runs: RecordRun[]
  more: boolean
  /**
   * Present when `data` is a reused buffer: gives it back for a later batch. Call it only once nothing reads `data`
   * (nor a view of it) again, the bytes sent on included; never calling it is safe.
   */
  release?: () => void
}

/**
 * Bytes a batch's data holds before its first record: the COPY header of a batch read as it was stored (19 bytes and
 * the row's fields), room left on purpose in one that was decompressed. A JSON page's head fits in it.
 */
export const RECORD_HEADROOM = 16

/** Records of a batch that lie side by side in its data, each followed by a line feed (see {@link RecordBatch.runs}). */
export interface RecordRun { first: number, count: number, plain: boolean }

/** How much one batch holds at most: `limit` records or `maxBytes` bytes of records, but always one record. */
export interface BatchSize { limit: number, maxBytes: number }
