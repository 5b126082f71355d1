/**
 * The FHIR simulator's mutable side: exports (building → ready, or cancelled / expired), the tokens it issued,
 * counters, and a setting for each quirk of the SMART reference server (docs/UPSTREAMS.md, FHIR Bulk Data) so tests can put
 * the adapter through every one.
 */
import { randomBytes } from 'node:crypto'
import { ADMISSION_STATS, type InjectedStatus, type Verdict } from '../../simulator-kit/admission.js'
import { DEFAULT_MAX_ENTRIES, remember, COUNTERS_PER_ENTRY, countUnder } from '../../simulator-kit/bounds.js'
import { Countdown, InjectedFaults } from '../../simulator-kit/injected-faults.js'
import { byKey, freshStats } from '../../simulator-kit/stats.js'
import type { ExportRequest, ExportShape, PlannedFile } from './exports.js'

/** How a 202 status answer names its wait. */
export type RetryAfterMode = 'seconds' | 'date' | 'absurd' | 'none'

export interface FhirSimulatorOptions extends ExportShape {
  /** Status polls answered 202 before the manifest (default 2). */
  pollsBeforeReady?: number
  /** Retry-After of a 202: `seconds` (retryAfterSeconds, default 1, the SMART server's), an HTTP date that far ahead, `absurd` (two hours), or none. */
  retryAfter?: RetryAfterMode
  retryAfterSeconds?: number
  /** The first N polls of each export answer 500 OperationOutcome code `transient` (the SMART server's transient_error: 1, and 2 seen). */
  transientPolls?: number
  /** Every download answers 410 (the SMART server's file_expired). */
  fileExpired?: boolean
  /** Kick-off, status and downloads need a bearer token from the token endpoint. */
  secure?: boolean
  /** SMART clients: client id → public JWK (RS384 or ES384). */
  clients?: Record<string, Record<string, unknown>>
  /** Lifetime of issued tokens, in seconds (default 300). */
  tokenSeconds?: number
  /** How long a 429 blocks, in ms (the SMART server: 5 minutes). Default 50. */
  throttleBlockMs?: number
  /**
   * The SMART server's limiter: more than this many kick-off and status requests within `limiterWindowMs` (default a
   * minute) answer 429, with an absolute epoch Retry-After (ms on the request that trips it, then s), for
   * `limiterBlockMs` (default 5 minutes). Downloads are not limited. Default: no limit.
   */
  requestsPerMinute?: number
  limiterWindowMs?: number
  limiterBlockMs?: number
  /** Gzipped downloads send bytes that are not gzip (a gzip header, then garbage) under `Content-Encoding: gzip`. */
  corruptGzip?: boolean
  /** The k-th download of a file breaks off (the connection dropped mid-body) after k × this many lines. Default: never. */
  breakEveryLines?: number
  /** Every export after the first has each file's lines in reverse order: a server whose re-export differs. */
  reorderReexports?: boolean
  /** The kick-off's 202 is sent this long after the export was created: a slow server, or a slow network. Default 0. */
  kickOffDelayMs?: number
  /** An export stays "in progress" at least this long after its kick-off, however often it is polled. Default 0. */
  buildMs?: number
  /** What the status URL of an unknown, cancelled or expired export answers: 404 (the SMART server's, default) or 410. */
  goneStatus?: 404 | 410
  /** An export is deleted this long after its kick-off (the SMART server: 60 minutes). Default: never. */
  exportTtlMs?: number
  /** An origin (`http://127.0.0.1:N`) the manifest's file URLs name instead of the simulator's own: a test's proxy, as a file host elsewhere. */
  filesAt?: string
  /** The same for the kick-off's Content-Location (the status URL). */
  statusAt?: string
  /** Exports kept; beyond it the oldest is forgotten (its status then answers 404). Default 1000. */
  maxEntries?: number
}

/** One export, from its kick-off. */
export interface SimExport {
  id: string
  request: ExportRequest
  files: PlannedFile[]
  /** The kick-off carried Authorization (the SMART server then requires it everywhere: requiresAccessToken). */
  secure: boolean
  polls: number
  createdAt: number
  transactionTime: string
  state: 'building' | 'ready' | 'cancelled'
}

const STATS = {
  kickOffs: 0,
  /** Kick-offs refused for their Accept or Prefer header. */
  badHeaders: 0,
  statusPolls: 0,
  manifests: 0,
  transientErrors: 0,
  /** Downloads started, and by `${exportId}:${file}`. */
  downloads: 0,
  downloadsByFile: byKey(),
  gzipped: 0,
  /** Downloads answered 403/404/410. */
  downloadsRefused: 0,
  /** DELETEs of a status URL that cancelled an export. */
  cancels: 0,
  tokenRequests: 0,
  tokensIssued: 0,
  tokensRefused: 0,
  /** Requests carrying Authorization. */
  withAuthorization: 0,
  ...ADMISSION_STATS,
}

export type FhirSimulatorStats = typeof STATS

/** The simulator's state, shared between its handlers and the test that started it. */
export class FhirSimulatorState {
  readonly options: Readonly<FhirSimulatorOptions>
  readonly exports = new Map<string, SimExport>()
  /** Issued access tokens → expiry (epoch ms). */
  readonly tokens = new Map<string, number>()
  /** Assertion ids already used (a replay is refused). */
  readonly jtis = new Map<string, number>()
  stats: FhirSimulatorStats = freshStats(STATS)
  #faults = new InjectedFaults<InjectedStatus>(503)
  readonly #throttles = new Countdown()
  #blockedUntil = 0
  #throttleBurst = 0
  /** The limiter's requests within its window (epoch ms), and its block. */
  #recent: number[] = []
  #limitedUntil = 0
  #limitedBurst = 0
  readonly #expireFiles = new Countdown()
  readonly #missingFiles = new Countdown()
  readonly #forbiddenFiles = new Countdown()
  readonly #refuseTokens = new Countdown()

  constructor (options: FhirSimulatorOptions = {}) {
    this.options = options
    this.reset()
  }

  /** Back to the state right after start. */
  reset (): void {
    this.exports.clear()
    this.tokens.clear()
    this.jtis.clear()
    this.stats = freshStats(STATS)
    this.#faults.reset()
    this.#throttles.arm(0)
    this.#blockedUntil = 0
    this.#recent = []
    this.#limitedUntil = 0
    this.#expireFiles.arm(0)
    this.#missingFiles.arm(0)
    this.#forbiddenFiles.arm(0)
    this.#breakAt = null
    this.#refuseTokens.arm(0)
  }

  get maxEntries (): number { return this.options.maxEntries ?? DEFAULT_MAX_ENTRIES }

  /** The next `n` kick-off and status requests answer 429 with the SMART server's absolute-epoch Retry-After. */
  throttleNext (n: number): void { this.#throttles.arm(n) }

  /** The next `n` kick-off, status and download requests answer `status` (502/503 as a proxy; 500 as the server). */
  failNext (n: number, status: InjectedStatus = 503): void { this.#faults.failNext(n, status) }

  /** The next `n` downloads answer 410 (the file expired), or 404 with `missing`. */
  expireFilesNext (n: number): void { this.#expireFiles.arm(n) }
  missingFilesNext (n: number): void { this.#missingFiles.arm(n) }
  /** The next `n` downloads answer 403, as an object store (S3, GCS, Azure) answers a signed link that expired. */
  forbidFilesNext (n: number): void { this.#forbiddenFiles.arm(n) }

  /** The next `n` token requests are refused: 401 invalid_client, or `status` (a 5xx: server_error, as the endpoint failing). */
  refuseTokensNext (n: number, status = 401): void {
    this.#refuseTokens.arm(n)
    this.#tokenRefusal = status
  }

  #tokenRefusal = 401

  /** Deletes every export now, as the SMART server's sweeper does after an hour. */
  expireExports (): void { this.exports.clear() }

  /**
   * The injected fault for an API request, or the limiter's 429 for a kick-off or status request (`limited`); a 429
   * carries its Retry-After value.
   */
  verdict (limited = false): Verdict<{ retryAfter: string }> {
    const now = Date.now()
    const limit = this.options.requestsPerMinute
    if (limited && limit !== undefined) {
      if (now >= this.#limitedUntil) {
        const windowMs = this.options.limiterWindowMs ?? 60_000
        this.#recent = this.#recent.filter(at => at > now - windowMs)
        this.#recent.push(now)
        if (this.#recent.length > limit) {
          this.#limitedUntil = now + (this.options.limiterBlockMs ?? 300_000)
          this.#limitedBurst = 0
          this.#recent = []
        }
      }
      if (now < this.#limitedUntil) {
        this.stats.throttled++
        const first = this.#limitedBurst++ === 0
        return { kind: 'throttle', retryAfter: String(first ? this.#limitedUntil : Math.ceil(this.#limitedUntil / 1000)) }
      }
    }
    if (this.#throttles.take() || now < this.#blockedUntil) {
      this.stats.throttled++
      // The SMART limiter: epoch ms on the request that trips it, epoch seconds on the ones after, while blocked.
      if (now >= this.#blockedUntil) {
        this.#blockedUntil = now + (this.options.throttleBlockMs ?? 50)
        this.#throttleBurst = 0
      }
      const first = this.#throttleBurst++ === 0
      return { kind: 'throttle', retryAfter: String(first ? Math.ceil(this.#blockedUntil) : Math.ceil(this.#blockedUntil / 1000)) }
    }
    return this.#faults.verdict(this.stats, () => ({ retryAfter: '1' }))
  }

  takeExpiredFile (): boolean { return this.options.fileExpired === true || this.#expireFiles.take() }
  takeMissingFile (): boolean { return this.#missingFiles.take() }
  takeForbiddenFile (): boolean { return this.#forbiddenFiles.take() }
  /** The status of the next refused token request, or null when it is not refused. */
  takeTokenRefusal (): number | null { return this.#refuseTokens.take() ? this.#tokenRefusal : null }

  /** Registers a new export. */
  addExport (request: ExportRequest, files: PlannedFile[], secure: boolean): SimExport {
    const now = Date.now()
    const e: SimExport = {
      id: randomBytes(12).toString('hex'), request, files, secure, polls: 0, createdAt: now, transactionTime: new Date(now).toISOString(), state: 'building',
    }
    remember(this.exports, e.id, e, this.maxEntries)
    return e
  }

  /** The export under `id` unless it is unknown, cancelled or expired. */
  liveExport (id: string): SimExport | undefined {
    const e = this.exports.get(id)
    if (e === undefined || e.state === 'cancelled') return undefined
    if (this.options.exportTtlMs !== undefined && Date.now() - e.createdAt > this.options.exportTtlMs) {
      this.exports.delete(id)
      return undefined
    }
    return e
  }

  /** Counts a download of one file. */
  countDownload (exportId: string, file: number): void {
    this.stats.downloads++
    countUnder(this.stats.downloadsByFile, `${exportId}:${file}`, this.maxEntries * COUNTERS_PER_ENTRY)
  }

  /** Every download from now on breaks off after `lines` lines, however often it was downloaded (no progress). */
  breakDownloadsAt (lines: number): void { this.#breakAt = lines }
  #breakAt: number | null = null

  /** After how many lines this download of a file breaks off; null: it does not. */
  breakAfter (exportId: string, file: number): number | null {
    if (this.#breakAt !== null) return this.#breakAt
    const every = this.options.breakEveryLines
    return every === undefined ? null : every * (this.stats.downloadsByFile[`${exportId}:${file}`] ?? 1)
  }

  /** A new access token valid for tokenSeconds. */
  issueToken (): { token: string, seconds: number } {
    const seconds = this.options.tokenSeconds ?? 300
    const token = randomBytes(24).toString('base64url')
    remember(this.tokens, token, Date.now() + seconds * 1000, this.maxEntries)
    this.stats.tokensIssued++
    return { token, seconds }
  }

  /** Whether `authorization` carries a token this simulator issued that has not expired. */
  validBearer (authorization: string | undefined): boolean {
    const m = /^Bearer (\S+)$/.exec(authorization ?? '')
    const expires = m === null ? undefined : this.tokens.get(m[1] as string)
    return expires !== undefined && Date.now() < expires
  }
}
