/**
 * Every error class of the gateway, each with a stable `code` that callers branch on (never on messages), in one
 * module as undici keeps its own. The problem+json error of the HTTP API (api/problem.ts) is the one exception:
 * its codes are the API's problem catalogue (api/problem-codes.ts), and no layer below the API throws it.
 *
 * Three families:
 * - a job's end: {@link UpstreamError} carries one of {@link JOB_ERROR_CODES}, stored on the failed job;
 * - why a running job's AbortSignal fired or its writes were refused: {@link JobCancelledError},
 *   {@link ShutdownError}, {@link LeaseLostError} (the worker decides by class what becomes of the job);
 * - refusals the API maps to problems, and faults an operator must fix: the rest.
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
  override name = 'UpstreamError'
  constructor (
    readonly code: JobErrorCode,
    message: string,
    readonly upstreamStatus: number | null = null
  ) {
    super(message)
  }
}

/** The client cancelled the job. */
export class JobCancelledError extends Error {
  override name = 'JobCancelledError'
  readonly code = 'job_cancelled'

  /** What a running job is aborted with, or its write refused with, once the client cancelled it. */
  static of (jobId: string): JobCancelledError {
    return new JobCancelledError(`job ${jobId} was cancelled`)
  }
}

/** The process is shutting down: the job goes back to the queue for another worker. */
export class ShutdownError extends Error {
  override name = 'ShutdownError'
  readonly code = 'shutdown'
}

/**
 * The job no longer belongs to this worker (its lease ran out and another took it, or the job ended): its writes are
 * refused. A write refused because the client cancelled the job is a {@link JobCancelledError} instead.
 */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError'
  readonly code = 'lease_lost'
}

/** The same Idempotency-Key was used with a different body. */
export class IdempotencyConflictError extends Error {
  override name = 'IdempotencyConflictError'
  readonly code = 'idempotency_conflict'
}

/** The client already has MAX_ACTIVE_JOBS_PER_CLIENT queued or running jobs. */
export class TooManyActiveJobsError extends Error {
  override name = 'TooManyActiveJobsError'
  readonly code = 'too_many_active_jobs'
  constructor (readonly limit: number) {
    super(`this client already has ${limit} queued or running jobs, the most it may have at once`)
  }
}

/** A client error in a webhook delivery (bad signature, malformed body): answered as problem+json. */
export class WebhookRejected extends Error {
  override name = 'WebhookRejected'
  readonly code: 'webhook_signature_invalid' | 'webhook_malformed'
  constructor (readonly status: number, message: string) {
    super(message)
    this.code = status === 401 ? 'webhook_signature_invalid' : 'webhook_malformed'
  }
}

/** Thrown when the environment is invalid; the message names each wrong variable. */
export class ConfigError extends Error {
  override name = 'ConfigError'
  readonly code = 'config_invalid'
}

/** Why a stored credential cannot be used; stable, for callers that branch on them. */
export type CredentialErrorCode = 'token_key_missing' | 'token_key_mismatch' | 'credential_tampered'

/**
 * A stored credential this gateway cannot use as configured. Permanent until an operator acts (the message says
 * how), unlike a database error, which may pass. Messages name keys by their id only.
 */
export class CredentialStoreError extends Error {
  override name = 'CredentialStoreError'
  constructor (readonly code: CredentialErrorCode, message: string) {
    super(message)
  }
}

/** The COPY data was not what the result reader asked for: a bug or a broken stream, never the client's fault. */
export class CopyFormatError extends Error {
  override name = 'CopyFormatError'
  readonly code = 'copy_format'
}

/**
 * Following a running job's results cannot go on to the job's completion: the job ended otherwise (`reason` is its
 * status: failed, cancelled, expired, or deleted), or this gateway is shutting down (`shutdown`). The records already
 * sent are not a whole set, so the stream must end abnormally.
 */
export class FollowBrokenError extends Error {
  override name = 'FollowBrokenError'
  readonly code = 'follow_broken'
  constructor (readonly jobId: string, readonly reason: string) {
    super(`following the results of job ${jobId} broke off: ${reason}`)
  }
}
