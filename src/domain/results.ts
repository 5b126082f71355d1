/** A job's results as the layers hand them to each other: batches of records, as bytes, read by position. */

/** Where a reader stands in a job's results: after (page, position). */
export interface ResultPosition { page: number, position: number }

/**
 * Records of one batch, in (page, position) order: record i is `data[starts[i], ends[i])`, stored at
 * (`pages[i]`, `positions[i]`). A response is built in `data` itself (api/result-bodies.ts), so a batch makes
 * one response. `more`: records follow the batch's last one.
 */
export interface RecordBatch {
  data: Buffer
  starts: number[]
  ends: number[]
  pages: number[]
  positions: number[]
  more: boolean
}

/** How much one batch holds at most: `limit` records or `maxBytes` bytes of records, but always one record. */
export interface BatchSize { limit: number, maxBytes: number }
