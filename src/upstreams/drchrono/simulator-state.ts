/**
 * The simulator's mutable side: issued lists (uuids), tokens, counters, and the faults tests inject.
 * Everything a test can steer is a method here, so tests never reach into the HTTP layer.
 */
import { randomUUID } from 'node:crypto'
import type { DrchronoResource } from './params.js'
import type { ListRequest, RecordCounts } from './simulator-data.js'
import { mulberry32 } from '../seeded-random.js'

/** The sandbox's fixed credentials: the gateway's sandbox settings and the simulator both default to them. */
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
  /** Refuse /api requests beyond this many per rolling second with 429. 0 = off (default). */
  maxRequestsPerSecond?: number
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
  /**
   * The Complete body, built while the list generates (as DrChrono builds its file) and dropped once served, so
   * the GET that completes a page only sends it. A later GET of the same uuid builds it again.
   */
  body?: string | undefined
}

export interface SimulatorStats {
  /** Accepted POSTs (new uuids) by `${resource}:${page}`. */
  posts: Record<string, number>
  gets: number
  unauthorized: number
  throttled: number
  serverErrors: number
  generationErrors: number
  /** GETs answered 404 "Invalid uuid specified". */
  invalidUuids: number
  /** POSTs answered 404 "Invalid page." (past the last page), by `${resource}:${page}`. */
  invalidPages: Record<string, number>
  tokenRefreshes: number
  failedRefreshes: number
}

const emptyStats = (): SimulatorStats => ({
  posts: {}, gets: 0, unauthorized: 0, throttled: 0, serverErrors: 0, generationErrors: 0,
  invalidUuids: 0, invalidPages: {}, tokenRefreshes: 0, failedRefreshes: 0,
})

/** What the simulator decided an /api request gets before it reaches the endpoint. */
export type Verdict = { kind: 'pass' } | { kind: 'throttle', seconds: number } | { kind: 'error', status: InjectedStatus }

export class DrchronoSimulatorState {
  readonly options: Readonly<DrchronoSimulatorOptions>
  readonly lists = new Map<string, ListEntry>()
  stats: SimulatorStats = emptyStats()
  accessToken = ''
  refreshToken = ''
  #faults: Required<FaultOptions> = this.#faultsFrom(undefined)
  #failGeneration = new Map<number, number>()
  #expireNext = new Map<number, number>()
  #recent: number[] = []
  #random: () => number = Math.random

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
    this.#faults = this.#faultsFrom(this.options.faults)
    this.#failGeneration.clear()
    this.#expireNext.clear()
    this.#recent = []
    this.#random = mulberry32((this.options.seed ?? 1) ^ 0x5eed)
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

  /** Accepted POSTs for one page of a resource (0 when none). */
  postsFor (resource: DrchronoResource, page: number): number {
    return this.stats.posts[`${resource}:${page}`] ?? 0
  }

  /** Total accepted POSTs of a resource. */
  totalPosts (resource: DrchronoResource): number {
    return Object.entries(this.stats.posts).filter(([k]) => k.startsWith(`${resource}:`)).reduce((n, [, v]) => n + v, 0)
  }

  /** Rate limit, then injected faults; counters move with each verdict. Called after authentication. */
  verdict (): Verdict {
    const f = this.#faults
    const limit = this.options.maxRequestsPerSecond ?? 0
    if (limit > 0) {
      const now = this.now()
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

  /** Registers a new list for an accepted POST, arming any generation failure or expiry meant for its page. */
  createList (resource: DrchronoResource, request: ListRequest): ListEntry {
    const key = `${resource}:${request.page}`
    this.stats.posts[key] = (this.stats.posts[key] ?? 0) + 1
    const entry: ListEntry = {
      ...request, resource, uuid: randomUUID(), createdAt: this.now(), polls: 0,
      doomed: this.#take(this.#failGeneration, request.page),
      vanishes: this.#take(this.#expireNext, request.page),
    }
    this.lists.set(entry.uuid, entry)
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
