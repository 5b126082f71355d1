/**
 * The one map from an upstream's HTTP status to a job's error code. Adapters keep only what their protocol really
 * adds on top (DrChrono's expired uuid, Clinia's REJECTED task, Metriport's failed run): for a plain status every
 * upstream means the same thing, so every upstream gets the same code for it.
 */
import { UpstreamError, type JobErrorCode } from '../domain/errors.js'

/** What a final (no longer retried) HTTP status of an upstream means for the job. */
export function codeForStatus (status: number): JobErrorCode {
  if (status === 401 || status === 403) return 'upstream_unauthorized'
  if (status === 404 || status === 410) return 'upstream_not_found'
  if (status === 429) return 'upstream_rate_limited'
  if (status === 502 || status === 503 || status === 504) return 'upstream_unavailable'
  if (status >= 400 && status < 500) return 'upstream_rejected'
  if (status >= 500) return 'upstream_failed'
  // 1xx, 3xx and a 2xx the protocol has no use for.
  return 'invalid_upstream_response'
}

/**
 * The job's error for an answer the protocol has no other use for. `message` says where and what, and must not
 * quote the body unless the adapter has checked that part is safe to show (no patient data, no secrets).
 */
export function statusError (status: number, message: string): UpstreamError {
  return new UpstreamError(codeForStatus(status), message, status)
}
