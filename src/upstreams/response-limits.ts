/**
 * Limits on what upstreams send back: the largest answer the shared client buffers (per upstream), the largest
 * record a job stores, the most bytes of answers one job holds before they are stored, and the time one request
 * may take from its first byte sent to its last byte read. An upstream that crosses one fails the job with a
 * stable code, never the gateway's memory or a worker forever.
 */

const MiB = 1024 * 1024

/**
 * The largest answer the shared client buffers, by upstream. Each is about three times (Clinia and Metriport
 * far more) the largest legitimate page worked out from what the upstream sends:
 * - drchrono: 1000 records per page (20 000 small ones for clinical_note_field_values); verbose clinical notes
 *   and patients run to ~20 KB each, so a page stays under ~20 MB;
 * - cliniko: 100 records per page; even treatment notes with long content stay under ~5 MB;
 * - ocl: list pages of 1000 concepts or mappings, a few KB each: ~10 MB;
 * - clinia: one receipt (~300 bytes) per operation, up to CLINIA_MAX_OPERATIONS (100 000 at most): ~30 MB;
 * - metriport: only `{"status","requestId"}` comes back; its documents come by webhook.
 * An upstream not listed (a new one) gets {@link DEFAULT_RESPONSE_BYTES}.
 */
export const DEFAULT_RESPONSE_BYTES_BY_UPSTREAM: Readonly<Record<string, number>> = {
  drchrono: 64 * MiB,
  cliniko: 16 * MiB,
  ocl: 32 * MiB,
  clinia: 64 * MiB,
  metriport: 1 * MiB,
}

export const DEFAULT_RESPONSE_BYTES = 32 * MiB
/** A single record: the largest legitimate ones (a clinical note, an OCL concept with all its names) are ~100 KB. */
export const DEFAULT_MAX_RECORD_BYTES = 16 * MiB
/**
 * Per job. DrChrono's pages each get their share of it (never more than DrChrono's 64 MiB answer limit): 64 MiB at
 * its default concurrency of 4, and at its highest, 16, still 32 MiB, above the ~20 MB a legitimate page reaches.
 */
export const DEFAULT_MAX_BYTES_IN_FLIGHT = 512 * MiB
/** API calls: a 64 MiB page still arrives in time at 250 KB/s; a normal page takes seconds. */
export const DEFAULT_REQUEST_DEADLINE_MS = 300_000
/** File downloads (OCL exports, up to OCL_EXPORT_MAX_DOWNLOAD_BYTES): an hour is 2 GiB at 600 KB/s. */
export const DEFAULT_DOWNLOAD_DEADLINE_MS = 3_600_000

/** The limits one client applies; see the defaults above. */
export interface ResponseLimits {
  /** The largest answer buffered for `upstream` (never more than maxBytesInFlight). */
  responseBytes (upstream: string): number
  maxRecordBytes: number
  /** Per job: answers held before savePage has stored them (see {@link ByteBudget}). */
  maxBytesInFlight: number
  /** Per attempt of request(): headers and the whole body. */
  requestDeadlineMs: number
  /** Per attempt of stream(): headers and the whole body, however slowly the caller reads it. */
  downloadDeadlineMs: number
}

/** Options that build {@link ResponseLimits}; omitted ones take the defaults. */
export interface ResponseLimitOptions {
  /** Overrides by upstream name (UPSTREAM_MAX_RESPONSE_BYTES). */
  responseBytes?: Readonly<Record<string, number>>
  /** Every upstream not named in `responseBytes`, instead of the per-upstream defaults. */
  defaultResponseBytes?: number
  maxRecordBytes?: number
  maxBytesInFlight?: number
  requestDeadlineMs?: number
  downloadDeadlineMs?: number
}

export function responseLimits (o: ResponseLimitOptions = {}): ResponseLimits {
  const maxBytesInFlight = o.maxBytesInFlight ?? DEFAULT_MAX_BYTES_IN_FLIGHT
  return {
    responseBytes: upstream => Math.min(maxBytesInFlight, o.responseBytes?.[upstream] ?? o.defaultResponseBytes ??
      DEFAULT_RESPONSE_BYTES_BY_UPSTREAM[upstream] ?? DEFAULT_RESPONSE_BYTES),
    maxRecordBytes: o.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES,
    maxBytesInFlight,
    requestDeadlineMs: o.requestDeadlineMs ?? DEFAULT_REQUEST_DEADLINE_MS,
    downloadDeadlineMs: o.downloadDeadlineMs ?? DEFAULT_DOWNLOAD_DEADLINE_MS,
  }
}

/**
 * The bytes one job may hold at once, as reservations: a request about to bring an answer reserves the most that
 * answer can be, and hands back what it did not need once the answer is read; the rest goes back once stored.
 * Reserving before a request starts (never while reading) means no reader ever waits holding part of an answer,
 * so readers can never wait on each other. One reservation is always granted when nothing is held, whatever its
 * size, so a job always makes progress.
 */
export class ByteBudget {
  #held = 0

  constructor (readonly limit: number) {}

  /** Bytes reserved now. */
  get held (): number {
    return this.#held
  }

  /** Reserves `bytes` if they fit now. */
  tryTake (bytes: number): boolean {
    if (this.#held > 0 && this.#held + bytes > this.limit) return false
    this.#held += bytes
    return true
  }

  /** Hands back bytes reserved earlier; the holder then tries again what did not fit. */
  release (bytes: number): void {
    this.#held = Math.max(0, this.#held - bytes)
  }
}

/** One attempt's signal: aborted by the job's signal (with its reason), or by the deadline (with `expired`). */
export interface AttemptSignal {
  readonly signal: AbortSignal
  /** Whether the deadline, not the job, ended the attempt. */
  readonly expired: boolean
  /** Stops the clock and lets go of the job's signal; call it once the attempt's body is read or dropped. */
  done (): void
}

/**
 * The signal of one attempt with a total deadline. Built by hand rather than with AbortSignal.any: a job's signal
 * lives for thousands of requests, and each must leave nothing behind on it once done.
 */
export function attemptSignal (job: AbortSignal, deadlineMs: number, reason: () => Error): AttemptSignal {
  const controller = new AbortController()
  let expired = false
  const onAbort = (): void => controller.abort(job.reason)
  const timer = setTimeout(() => {
    expired = true
    controller.abort(reason())
  }, deadlineMs)
  job.addEventListener('abort', onAbort, { once: true })
  if (job.aborted) onAbort()
  return {
    signal: controller.signal,
    get expired () { return expired },
    done () {
      clearTimeout(timer)
      job.removeEventListener('abort', onAbort)
    },
  }
}
