/**
 * FHIR servers explain a refusal in an OperationOutcome. Its `diagnostics` (or `details.text`) goes into the job's
 * error message, made safe first: printable ASCII, URLs cut to their path (the host may be internal, user info and a
 * signed link's query are credentials), bearer tokens and JWTs removed, cut short. Pure.
 */
import { UpstreamError, type JobErrorCode } from '../../domain/errors.js'
import { codeForStatus } from '../status-codes.js'

/** What an answer's OperationOutcome says, as far as the adapter uses it. */
export interface Outcome {
  /** The issues' codes (`transient`, `processing`, `not-found`…). */
  codes: string[]
  /** The first issue's explanation, made safe to show; null when there is none. */
  diagnostics: string | null
}

const MAX_DIAGNOSTICS = 200

/** Text from a server, safe for a job's message and logs. */
export function safeText (text: string): string {
  return text
    // A URL keeps its path only: its host may be internal, its user info and query credentials.
    .replace(/\bhttps?:\/\/[^\s/?#"']*([^\s?#"']*)(?:[?#][^\s"']*)?/gi, (_url, path: string) => path === '' ? '/' : path)
    .replace(/\bBearer\s+\S+/gi, 'Bearer [redacted]')
    .replace(/\beyJ[\w-]*\.[\w-]*\.[\w-]*/g, '[redacted]')
    .replace(/[^\x20-\x7e]+/g, ' ')
    .trim()
    .slice(0, MAX_DIAGNOSTICS)
}

/** The OperationOutcome in `body`, or null when the body is not one. */
export function readOutcome (body: Buffer | string): Outcome | null {
  let value: unknown
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'))
  } catch {
    return null
  }
  const outcome = value as { resourceType?: unknown, issue?: unknown } | null
  if (outcome?.resourceType !== 'OperationOutcome' || !Array.isArray(outcome.issue)) return null
  const issues = outcome.issue as Array<{ code?: unknown, diagnostics?: unknown, details?: { text?: unknown } } | null>
  const codes = issues.map(i => i?.code).filter((c): c is string => typeof c === 'string' && /^[a-z-]{1,40}$/.test(c))
  const first = issues.map(i => typeof i?.diagnostics === 'string' ? i.diagnostics : typeof i?.details?.text === 'string' ? i.details.text : null)
    .find(t => t !== null && t.trim() !== '')
  return { codes, diagnostics: first === undefined || first === null ? null : safeText(first) }
}

/** A 500 the server itself calls transient: asked again, as the Bulk Data IG says a client should. */
export function isTransient (status: number, body: Buffer | string): boolean {
  return status === 500 && (readOutcome(body)?.codes.includes('transient') ?? false)
}

/**
 * The job's error for a refused request: the status's code (status-codes.ts) unless `code` overrides it, and the
 * outcome's diagnostics after the gateway's own words.
 */
export function outcomeError (what: string, status: number, body: Buffer | string, code?: JobErrorCode): UpstreamError {
  const diagnostics = readOutcome(body)?.diagnostics ?? null
  const said = diagnostics === null ? '' : `: ${diagnostics}`
  return new UpstreamError(code ?? codeForStatus(status), `${what} answered ${status}${said}`, status)
}
