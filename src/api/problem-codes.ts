/**
 * Every stable code a problem+json answer can carry, with its status and what it means: the one list.
 * Clients branch on `code` (or on `type`, the URI naming it), never on `detail`, whose words may change. The table
 * under "Problem codes" in docs/API.md is checked against this list by a test.
 */

/** A problem type: the status it is answered with, its title, and when it happens. */
export interface ProblemType { status: number, title: string, meaning: string }

export const PROBLEM_TYPES = {
  validation_failed: { status: 400, title: 'Bad Request', meaning: 'a field of the body, query, path or a header is invalid; `errors[]` names each one with a JSON pointer' },
  callback_origin_not_allowed: { status: 400, title: 'Bad Request', meaning: 'the `callback.url` origin is not listed in CALLBACK_ALLOWED_ORIGINS (or that list is empty)' },
  callback_url_refused: { status: 400, title: 'Bad Request', meaning: 'the `callback.url` leads to an address the gateway does not call (private, loopback, link-local unless allowed in UPSTREAM_ALLOWED_ORIGINS; plain http in production), or carries a user name' },
  callback_secret_missing: { status: 400, title: 'Bad Request', meaning: 'the client asked for a callback but has no signing secret in CALLBACK_SECRETS' },
  malformed_request: { status: 400, title: 'Bad Request', meaning: 'the request cannot be read: malformed HTTP, a path that does not decode, JSON that does not parse or nests too deep, an empty JSON body' },
  invalid_cursor: { status: 400, title: 'Bad Request', meaning: 'the `cursor` is not one this API gave out' },
  unauthorized: { status: 401, title: 'Unauthorized', meaning: 'no client key, or one the gateway does not know' },
  job_not_found: { status: 404, title: 'Not Found', meaning: 'no job with this id belongs to the calling client' },
  route_not_found: { status: 404, title: 'Not Found', meaning: 'no route answers this method and path' },
  request_timeout: { status: 408, title: 'Request Timeout', meaning: 'the whole request did not arrive within REQUEST_TIMEOUT_SECONDS' },
  results_not_ready: { status: 409, title: 'Conflict', meaning: 'the job has not completed: its results cannot be read yet' },
  results_expired: { status: 410, title: 'Gone', meaning: 'the results expired (or the job was cancelled) and were deleted; submit the job again' },
  body_too_large: { status: 413, title: 'Content Too Large', meaning: 'the body is larger than the route accepts' },
  uri_too_long: { status: 414, title: 'URI Too Long', meaning: 'a path parameter is longer than any valid value' },
  unsupported_media_type: { status: 415, title: 'Unsupported Media Type', meaning: 'the body\'s `Content-Type` is not one the route reads (JSON for /jobs)' },
  idempotency_key_reused: { status: 422, title: 'Unprocessable Content', meaning: 'the `Idempotency-Key` was used before with a different body' },
  too_many_active_jobs: { status: 429, title: 'Too Many Requests', meaning: 'the client already has MAX_ACTIVE_JOBS_PER_CLIENT queued or running jobs; submit more when some have finished' },
  rate_limited: { status: 429, title: 'Too Many Requests', meaning: 'the client (or, without a valid key, the address) went over its request rate, or an address sent too many refused webhook deliveries; see `Retry-After`' },
  too_many_streams: { status: 429, title: 'Too Many Requests', meaning: 'the client already has MAX_RESULT_STREAMS_PER_CLIENT NDJSON result streams open on this gateway process; see `Retry-After`' },
  headers_too_large: { status: 431, title: 'Request Header Fields Too Large', meaning: 'the request headers are too large' },
  internal_error: { status: 500, title: 'Internal Server Error', meaning: 'the gateway failed to handle the request; it is logged' },
  large_bodies_busy: { status: 503, title: 'Service Unavailable', meaning: 'too many large job bodies are waiting to be prepared on this gateway process; see `Retry-After`' },
  not_ready: { status: 503, title: 'Service Unavailable', meaning: 'the gateway cannot serve yet (database unreachable, migrations not applied); see `Retry-After`' },
  webhook_malformed: { status: 400, title: 'Bad Request', meaning: 'a webhook delivery is not what the upstream sends (body or headers)' },
  webhook_signature_invalid: { status: 401, title: 'Unauthorized', meaning: 'a webhook delivery\'s signature is missing, malformed or wrong' },
} as const satisfies Record<string, ProblemType>

/** A stable problem code. */
export type ProblemCode = keyof typeof PROBLEM_TYPES

/**
 * The `type` URI of a problem: a tag URI (RFC 4151), absolute and the same on every deployment, so a client can
 * compare it without knowing where the gateway runs. Its last segment is the code.
 */
export function problemTypeUri (code: ProblemCode): string {
  return `tag:bulk-gateway,2026:problem:${code}`
}

/** The code for a status when nothing more precise is known (Fastify's own errors, Node's). */
export function codeForClientStatus (status: number): ProblemCode {
  const byStatus: Record<number, ProblemCode> = {
    400: 'malformed_request',
    404: 'route_not_found',
    408: 'request_timeout',
    413: 'body_too_large',
    414: 'uri_too_long',
    415: 'unsupported_media_type',
    431: 'headers_too_large',
  }
  return byStatus[status] ?? (status >= 500 ? 'internal_error' : 'malformed_request')
}
