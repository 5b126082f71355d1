/**
 * The codes a job can fail with, and the one map from an upstream's HTTP status to them. Adapters keep only what
 * their protocol really adds on top (DrChrono's expired uuid, Clinia's REJECTED task, Metriport's failed run):
 * for a plain status every upstream means the same thing, so every upstream gets the same code for it.
 */

/** Every stable error code of a failed job, with what it means. Clients branch on these, never on messages. */
export const JOB_ERROR_CODES = {
  upstream_unauthorized: 'the upstream refused the credentials or their permissions (401, 403), and a token refresh, where configured, failed',
  upstream_not_found: 'the upstream does not know what the job asked for (404, 410): a source version, a patient, a task',
  upstream_rate_limited: 'the upstream kept answering 429 through the retries, or (where no shared budget paces it) asked for a longer wait than the gateway allows',
  upstream_rejected: 'the upstream refused the request as invalid (another 4xx, such as 400 or 422), or refused a whole write',
  upstream_unavailable: 'the upstream could not be reached, or kept answering 502, 503 or 504, through the retries',
  upstream_failed: 'the upstream reported its own failure (a 500, a list or export it could not generate, a failed run)',
  upstream_timeout: 'the upstream stopped answering within the timeout, or did not finish (or call back) before the deadline',
  upstream_pagination_loop: 'the upstream sent a page it had already sent: following it would never end',
  upstream_url_refused: 'the upstream sent the gateway to a URL it does not follow (a private, loopback or link-local address, plain http in production), not listed in UPSTREAM_ALLOWED_ORIGINS',
  upstream_response_too_large: 'the upstream sent more than the gateway accepts: an answer, a record or an export file (download, inflated size, compression ratio, entries) past its limit; not retried',
  invalid_upstream_response: 'the upstream answered something that does not follow its protocol',
  upstream_not_configured: 'the upstream has no configuration and sandbox mode is off',
  internal_error: 'the gateway itself failed repeatedly on this job',
} as const

/** Stable error codes a job can fail with. */
export type JobErrorCode = keyof typeof JOB_ERROR_CODES

/** A failure that ends a job with a stable code. Thrown by adapters and the shared client. */
export class UpstreamError extends Error {
  constructor (
    readonly code: JobErrorCode,
    message: string,
    readonly upstreamStatus: number | null = null,
  ) {
    super(message)
    this.name = 'UpstreamError'
  }
}

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
