/**
 * What a DrChrono simulator starts with: the credentials it accepts, the fake practice, the behaviours DrChrono's
 * documentation leaves open, rate limits and faults. Most knobs are also methods of its state.
 */
import type { InjectedStatus } from '../../simulator-kit/admission.js'
import type { RecordCounts } from './lists.js'
import type { InProgressBody, PastEndMode } from './stats.js'

/**
 * Credentials a simulator started alone (tests, benchmarks) accepts unless told others. Published: the gateway's
 * sandbox never uses them, it draws its own per process.
 */
export const SANDBOX_CREDENTIALS = {
  accessToken: 'sandbox-drchrono-access-token',
  refreshToken: 'sandbox-drchrono-refresh-token',
  clientId: 'sandbox-drchrono-client',
  clientSecret: 'sandbox-drchrono-secret',
} as const

/** Faults present from the start; the same knobs are methods of {@link DrchronoSimulatorState}. */
export interface FaultOptions {
  /** The next N /api requests answer 429. */
  throttleNext?: number
  /** Each /api request answers 429 with this probability (seeded, so runs repeat). */
  throttleRatio?: number
  /** The N in "Expected available in N seconds." and in Retry-After. Default 1. */
  retryAfterSeconds?: number
  /** Whether a 429 carries a Retry-After header (UNCONFIRMED for DrChrono). Default true. */
  retryAfterHeader?: boolean
  /** The next N /api requests answer `errorStatus`. */
  errorNext?: number
  /** Each /api request answers `errorStatus` with this probability (seeded). */
  errorRatio?: number
  /** 502/503 come as plain text (a proxy), 500 as DRF's JSON. Default 503. */
  errorStatus?: InjectedStatus
}

export interface DrchronoSimulatorOptions {
  /** Seeds the fake data and the random faults. Default 1. */
  seed?: number
  /** Records per resource: one number for all, or per resource (see DEFAULT_RECORD_COUNTS). */
  recordCount?: number | Partial<RecordCounts>
  /** GETs of a uuid that answer "In progress" before it is Complete. Default 2. */
  inProgressPolls?: number
  /** A list is not Complete before this long after its POST, whatever the polls. Default 0. */
  generationMs?: number
  /** How long a uuid lives after its POST. Default 1 hour, as DrChrono. */
  uuidTtlMs?: number
  accessToken?: string
  refreshToken?: string
  clientId?: string
  clientSecret?: string
  /**
   * `expires_in` of the tokens a refresh issues, in seconds; they are refused once it has passed. Default 172800
   * (48 h, as DrChrono). The configured access token has no expiry unless revoked.
   */
  tokenExpiresInSeconds?: number
  /**
   * The status of an `invalid_grant` refusal. Default 400, as django-oauth-toolkit (oauthlib) answers, per RFC 6749
   * §5.2; DrChrono integrators report 401, which the adapter must read too.
   */
  invalidGrantStatus?: 400 | 401
  /**
   * Lists (uuids) kept at once; beyond it the oldest is forgotten, as if its hour had passed (a poll of it is a 404).
   * Counters by page keep ten times as many keys. Default 1000.
   */
  maxEntries?: number
  /** How a page past the list's last one is refused. Default `poll-404`. */
  pastEnd?: PastEndMode
  /** What a poll of a list still generated answers (the exact body is UNCONFIRMED). Default `documented`. */
  inProgressBody?: InProgressBody
  /** Whether a 429's body says how long to wait (DRF's "Expected available in N seconds."). Default true. */
  throttleWaitInBody?: boolean
  /** Refuse /api requests beyond this many per rolling second with 429. 0 = off (default). */
  maxRequestsPerSecond?: number
  /**
   * Refuse /api requests beyond this many per clock hour (UTC) with 429 until the top of the hour, as DrChrono's
   * 500 per application. 0 = off (default).
   */
  maxRequestsPerHour?: number
  faults?: FaultOptions
  /**
   * Keep each page's records, as bytes, once generated, and answer the same page of the same list from them again
   * (with its own uuid and pagination). For benchmarks: generating records costs the simulator more CPU than the
   * gateway spends storing them, on cores a real DrChrono does not share with the gateway. Default false.
   */
  keepPages?: boolean
  /** The clock, for uuid expiry and generation time. */
  now?: () => number
}
