/**
 * Sizes past which what an upstream sends fails the job with `upstream_response_too_large`. The engine checks
 * every record an adapter hands it (UPSTREAM_MAX_RECORD_BYTES); the upstream client checks answers and files.
 */
import { UpstreamError } from '../domain/errors.js'
import type { PageRecords } from './adapter.js'
import { isSpans, recordBytes } from './records.js'

/**
 * The job's error for an answer past a size limit. Never retried: the same request would be as large again.
 * `setting` names the variable an operator raises if the answer was legitimate.
 */
export function tooLarge (what: string, limit: number, setting: string, status: number | null = null): UpstreamError {
  return new UpstreamError('upstream_response_too_large', `${what} exceeds the gateway's limit of ${limit} bytes (${setting})`, status)
}

/** `UPSTREAM_MAX_RECORD_BYTES`: fails with upstream_response_too_large on the first record past the limit. */
export function checkRecordSizes (records: PageRecords, limit: number): void {
  if (isSpans(records)) {
    for (let i = 0; i < records.length; i++) {
      const bytes = recordBytes(records, i)
      if (bytes > limit) throw tooLarge(`A record of ${bytes} bytes`, limit, 'UPSTREAM_MAX_RECORD_BYTES')
    }
    return
  }
  for (const record of records) {
    // A UTF-16 code unit is at most 3 bytes of UTF-8: most records are cleared without measuring them.
    const bytes = typeof record === 'string' ? (record.length * 3 <= limit ? 0 : Buffer.byteLength(record)) : record.byteLength
    if (bytes > limit) throw tooLarge(`A record of ${bytes} bytes`, limit, 'UPSTREAM_MAX_RECORD_BYTES')
  }
}
