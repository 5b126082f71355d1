/**
 * The simulator's mutable side: issued lists (uuids), tokens, counters, and the faults tests inject.
 * Everything a test can steer is a method here, so tests never reach into the HTTP layer.
 */
import { randomUUID } from 'node:crypto'
import type { DrchronoResource } from '../params.js'
import type { ListRequest, RecordCounts } from './lists.js'
import { mulberry32 } from '../../simulator-kit/seeded-random.js'
import { COUNTERS_PER_ENTRY, DEFAULT_MAX_ENTRIES, countUnder, remember } from '../../simulator-kit/bounds.js'
import { emptyStats, sumOf, type InProgressBody, type PastEndMode, type SimulatorStats } from './stats.js'

export { IN_PROGRESS_BODIES, PAST_END_MODES, type InProgressBody, type PastEndMode, type SimulatorStats } from './stats.js'

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

export type InjectedStatus = 500 | 502 | 503


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
  /** The clock, for uuid expiry and generation time. */
  now?: () => number
}

/** One generated (or generating) list behind a uuid. */
export interface ListEntry extends ListRequest {
  uuid: string
  resource: DrchronoResource
  createdAt: number
  polls: number
  /** Generation fails: the GET that would complete it answers 500 and the uuid dies. */
  doomed: boolean
  /** Vanishes on its first GET, as if its hour had passed. */
  vanishes: boolean
  /** Set when the page is past the list's last one: how its polls refuse it (decided at its POST). */
  pastEnd?: Exclude<PastEndMode, 'post-404'> | undefined
  /**
   * The Complete body, built while the list generates (as DrChrono builds its file) and dropped once served, so
   * the GET that completes a page only sends it. A later GET of the same uuid builds it again.
   */
  body?: string | undefined
}

/** What the simulator decided an /api request gets before it reaches the endpoint. */
export type Verdict = { kind: 'pass' } | { kind: 'throttle', seconds: number } | { kind: 'error', status: InjectedStatus }

export class DrchronoSimulatorState {
  readonly options: Readonly<DrchronoSimulatorOptions>
  readonly lists = new Map<string, ListEntry>()
  stats: SimulatorStats = emptyStats()
  accessToken = ''
  refreshToken = ''
  /** When the current access token stops working (the clock of `now()`); null: until revoked. */
  accessTokenExpiresAt: number | null = null
  /** Token requests waiting for {@link holdTokenRequests} to be released. */
  waitingTokenRequests = 0
  #tokenHold: { promise: Promise<void>, release: () => void } | null = null
  #faults: Required<FaultOptions> = this.#faultsFrom(undefined)
  #failGeneration = new Map<number, number>()
  #expireNext = new Map<number, number>()
  #recent: number[] = []
  #lostTokenAnswers = 0
  /** Every /api request of the last second, refused ones included: what the clients sent, for `peakPerSecond`. */
  #arrivals: number[] = []
  #hour = { start: 0, count: 0 }
  #random: () => number = Math.random
  #pastEnd: PastEndMode = 'poll-404'
  /** Every uuid issued since the last reset, so a poll of a dead uuid still counts for its page. */
  readonly #issued = new Map<string, { page: number, pastEnd: boolean }>()

  constructor (options: DrchronoSimulatorOptions = {}) {
    this.options = options
    this.reset()
  }

  now (): number {
    return this.options.now?.() ?? Date.now()
  }

  /** Back to the state right after start: no lists, zero counters, the configured tokens and faults. */
  reset (): void {
    this.lists.clear()
    this.stats = emptyStats()
    this.accessToken = this.options.accessToken ?? SANDBOX_CREDENTIALS.accessToken
    this.refreshToken = this.options.refreshToken ?? SANDBOX_CREDENTIALS.refreshToken
    this.accessTokenExpiresAt = null
    this.#tokenHold?.release()
    this.#tokenHold = null
    this.#faults = this.#faultsFrom(this.options.faults)
    this.#failGeneration.clear()
    this.#expireNext.clear()
    this.#recent = []
    this.#lostTokenAnswers = 0
    this.#arrivals = []
    this.#hour = { start: 0, count: 0 }
    this.#random = mulberry32((this.options.seed ?? 1) ^ 0x5eed)
    this.#pastEnd = this.options.pastEnd ?? 'poll-404'
    this.#issued.clear()
  }

  /** How pages past the end are refused from now on; lists already POSTed keep the behaviour they were given. */
  setPastEnd (mode: PastEndMode): void {
    this.#pastEnd = mode
  }

  get pastEndMode (): PastEndMode {
    return this.#pastEnd
  }

  /** Counts one /api request for `page` (a number, or undefined when unknown), before anything else happens to it. */
  countRequest (resource: DrchronoResource, page: number | undefined): void {
    this.#count(this.stats.requests, `${resource}:${page ?? '?'}`)
  }

  /** Counts one answer 404 "Invalid page." for a page of a resource. */
  countInvalidPage (resource: DrchronoResource, page: number): void {
    this.#count(this.stats.invalidPages, `${resource}:${page}`)
  }

  /** Counts one request about a page past the list's end. */
  countPastEnd (resource: DrchronoResource, page: number): void {
    this.#count(this.stats.pastEnd, `${resource}:${page}`)
  }

  /** The page a uuid was issued for and whether it lies past the end, also once the uuid is dead. */
  issued (uuid: string): { page: number, pastEnd: boolean } | undefined {
    return this.#issued.get(uuid)
  }

  /** The next `n` /api requests answer 429 "Expected available in `seconds` seconds.". */
  throttleNext (n: number, seconds = this.#faults.retryAfterSeconds): void {
    this.#faults.throttleNext = n
    this.#faults.retryAfterSeconds = seconds
  }

  /** The next `n` /api requests answer `status` (502/503 plain text, 500 JSON). */
  failNext (n: number, status: InjectedStatus = 503): void {
    this.#faults.errorNext = n
    this.#faults.errorStatus = status
  }

  /** Random faults on every /api request; ratios in 0..1, drawn from the seeded PRNG. */
  setFaultRatios (ratios: { throttle?: number, error?: number, errorStatus?: InjectedStatus }): void {
    if (ratios.throttle !== undefined) this.#faults.throttleRatio = ratios.throttle
    if (ratios.error !== undefined) this.#faults.errorRatio = ratios.error
    if (ratios.errorStatus !== undefined) this.#faults.errorStatus = ratios.errorStatus
  }

  /** Whether 429s carry Retry-After (off: the adapter must read the wait from the body). */
  setRetryAfterHeader (on: boolean): void {
    this.#faults.retryAfterHeader = on
  }

  get retryAfterHeader (): boolean {
    return this.#faults.retryAfterHeader
  }

  /** The next `times` lists generated for `page` fail (GET 500 status Error); a later POST generates fine. */
  failGeneration (page: number, times = 1): void {
    this.#failGeneration.set(page, times)
  }

  /** The next `times` uuids issued for `page` expire before their first GET. */
  expireNext (page: number, times = 1): void {
    this.#expireNext.set(page, times)
  }

  /** Expires every current uuid, or those of one page: their next GET is 404. */
  expire (page?: number): void {
    for (const [uuid, entry] of this.lists) if (page === undefined || entry.page === page) this.lists.delete(uuid)
  }

  /** The current access token stops working, as when its 48 hours are over. */
  revokeAccessToken (): void {
    this.accessToken = `revoked-${randomUUID()}`
  }

  /** Whether an /api request with this bearer token is let in: the current access token, before its expiry. */
  acceptsAccessToken (token: string): boolean {
    return token === this.accessToken && (this.accessTokenExpiresAt === null || this.now() < this.accessTokenExpiresAt)
  }

  /**
   * A refresh with `refreshToken`: a new pair when it is the current refresh token, which then stops working (each
   * works once, the configured one included, as django-oauth-toolkit rotates them), with the old access token.
   * Null when it is not the current one: `invalid_grant`.
   */
  rotateTokens (refreshToken: string): { accessToken: string, refreshToken: string, expiresIn: number } | null {
    if (refreshToken !== this.refreshToken) {
      this.stats.failedRefreshes++
      return null
    }
    const expiresIn = this.options.tokenExpiresInSeconds ?? 172_800
    this.accessToken = `access-${randomUUID()}`
    this.refreshToken = `refresh-${randomUUID()}`
    this.accessTokenExpiresAt = this.now() + expiresIn * 1000
    this.stats.tokenRefreshes++
    return { accessToken: this.accessToken, refreshToken: this.refreshToken, expiresIn }
  }

  /**
   * The next `n` refreshes rotate the tokens and then lose their answer (a proxy's 502): the caller never learns
   * the new pair, and its refresh token is spent.
   */
  loseTokenAnswers (n: number): void {
    this.#lostTokenAnswers = n
  }

  /** Whether this refresh's answer is lost (see {@link loseTokenAnswers}). */
  takeLostTokenAnswer (): boolean {
    if (this.#lostTokenAnswers <= 0) return false
    this.#lostTokenAnswers--
    return true
  }

  /** Token requests wait from now until the returned function is called (a test lines up concurrent refreshes). */
  holdTokenRequests (): () => void {
    let release = (): void => {}
    const promise = new Promise<void>(resolve => { release = resolve })
    const hold = { promise, release }
    this.#tokenHold = hold
    return () => {
      if (this.#tokenHold === hold) this.#tokenHold = null
      release()
    }
  }

  /** Resolves when token requests may proceed (see {@link holdTokenRequests}). */
  async tokenGate (): Promise<void> {
    const hold = this.#tokenHold
    if (hold === null) return
    this.waitingTokenRequests++
    try {
      await hold.promise
    } finally {
      this.waitingTokenRequests--
    }
  }

  /** Accepted POSTs for one page of a resource (0 when none). */
  postsFor (resource: DrchronoResource, page: number): number {
    return this.stats.posts[`${resource}:${page}`] ?? 0
  }

  /** Total accepted POSTs of a resource. */
  totalPosts (resource: DrchronoResource): number {
    return sumOf(this.stats.posts, resource)
  }

  /** /api requests (POSTs and GETs, whatever their answer) for one page of a resource. */
  requestsFor (resource: DrchronoResource, page: number): number {
    return this.stats.requests[`${resource}:${page}`] ?? 0
  }

  /** All /api requests of a resource. */
  totalRequests (resource: DrchronoResource): number {
    return sumOf(this.stats.requests, resource)
  }

  /** Requests of a resource about pages past its list's end. */
  pastEndRequests (resource: DrchronoResource): number {
    return sumOf(this.stats.pastEnd, resource)
  }

  /** Rate limit, then injected faults; counters move with each verdict. Called after authentication. */
  verdict (): Verdict {
    const f = this.#faults
    const now = this.now()
    this.#arrivals = this.#arrivals.filter(t => t > now - 1000)
    this.#arrivals.push(now)
    this.stats.peakPerSecond = Math.max(this.stats.peakPerSecond, this.#arrivals.length)
    const perHour = this.options.maxRequestsPerHour ?? 0
    if (perHour > 0) {
      const start = Math.floor(now / 3_600_000) * 3_600_000
      if (this.#hour.start !== start) this.#hour = { start, count: 0 }
      if (this.#hour.count >= perHour) return this.#throttled(Math.ceil((start + 3_600_000 - now) / 1000))
      this.#hour.count++
    }
    const limit = this.options.maxRequestsPerSecond ?? 0
    if (limit > 0) {
      this.#recent = this.#recent.filter(t => t > now - 1000)
      if (this.#recent.length >= limit) return this.#throttled(1)
      this.#recent.push(now)
    }
    if (f.errorNext > 0) { f.errorNext--; return this.#errored() }
    if (f.errorRatio > 0 && this.#random() < f.errorRatio) return this.#errored()
    if (f.throttleNext > 0) { f.throttleNext--; return this.#throttled(f.retryAfterSeconds) }
    if (f.throttleRatio > 0 && this.#random() < f.throttleRatio) return this.#throttled(f.retryAfterSeconds)
    return { kind: 'pass' }
  }

  /**
   * Registers a new list for an accepted POST, arming any generation failure or expiry meant for its page.
   * `pastEnd` says how its polls refuse a page past the end of the list.
   */
  createList (resource: DrchronoResource, request: ListRequest, pastEnd?: ListEntry['pastEnd']): ListEntry {
    this.#count(this.stats.posts, `${resource}:${request.page}`)
    const entry: ListEntry = {
      ...request, resource, uuid: randomUUID(), createdAt: this.now(), polls: 0,
      doomed: this.#take(this.#failGeneration, request.page),
      vanishes: this.#take(this.#expireNext, request.page),
      pastEnd,
    }
    remember(this.lists, entry.uuid, entry, this.maxEntries)
    remember(this.#issued, entry.uuid, { page: entry.page, pastEnd: pastEnd !== undefined }, this.maxEntries * COUNTERS_PER_ENTRY)
    return entry
  }

  /** The live list behind a uuid, or undefined when unknown, expired or vanishing (each is a 404). */
  liveList (uuid: string): ListEntry | undefined {
    const entry = this.lists.get(uuid)
    const ttl = this.options.uuidTtlMs ?? 3_600_000
    if (entry && !entry.vanishes && this.now() - entry.createdAt < ttl) return entry
    this.lists.delete(uuid)
    this.stats.invalidUuids++
    return undefined
  }

  get maxEntries (): number {
    return this.options.maxEntries ?? DEFAULT_MAX_ENTRIES
  }

  #count (counts: Record<string, number>, key: string): void {
    countUnder(counts, key, this.maxEntries * COUNTERS_PER_ENTRY)
  }

  #take (armed: Map<number, number>, page: number): boolean {
    const left = armed.get(page) ?? 0
    if (left <= 0) return false
    armed.set(page, left - 1)
    return true
  }

  #throttled (seconds: number): Verdict {
    this.stats.throttled++
    return { kind: 'throttle', seconds }
  }

  #errored (): Verdict {
    this.stats.serverErrors++
    return { kind: 'error', status: this.#faults.errorStatus }
  }

  #faultsFrom (f: FaultOptions | undefined): Required<FaultOptions> {
    return {
      throttleNext: f?.throttleNext ?? 0,
      throttleRatio: f?.throttleRatio ?? 0,
      retryAfterSeconds: f?.retryAfterSeconds ?? 1,
      retryAfterHeader: f?.retryAfterHeader ?? true,
      errorNext: f?.errorNext ?? 0,
      errorRatio: f?.errorRatio ?? 0,
      errorStatus: f?.errorStatus ?? 503,
    }
  }
}
