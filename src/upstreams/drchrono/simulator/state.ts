/**
 * The simulator's mutable side: issued lists (uuids), tokens (tokens.ts), counters, and the faults tests inject.
 * Everything a test can steer is a method here, so tests never reach into the HTTP layer.
 */
import { randomUUID } from 'node:crypto'
import type { DrchronoResource } from '../params.js'
import type { ListRequest } from './lists.js'
import type { InjectedStatus, Verdict } from '../../simulator-kit/admission.js'
import { InjectedFaults } from '../../simulator-kit/injected-faults.js'
import { COUNTERS_PER_ENTRY, DEFAULT_MAX_ENTRIES, countUnder, remember } from '../../simulator-kit/bounds.js'
import type { DrchronoSimulatorOptions, FaultOptions } from './options.js'
import { freshStats, totalOf } from '../../simulator-kit/stats.js'
import { STATS, type PastEndMode, type SimulatorStats } from './stats.js'
import { DrchronoTokens } from './tokens.js'

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
  body?: string | Buffer | undefined
}

/** The simulator's state; its OAuth tokens are {@link DrchronoTokens}'. */
export class DrchronoSimulatorState extends DrchronoTokens {
  readonly options: Readonly<DrchronoSimulatorOptions>
  readonly lists = new Map<string, ListEntry>()
  stats: SimulatorStats = freshStats(STATS)
  #faults = new InjectedFaults<InjectedStatus>(503)
  #retryAfterHeader = true
  #failGeneration = new Map<number, number>()
  #expireNext = new Map<number, number>()
  #recent: number[] = []
  /** Every /api request of the last second, refused ones included: what the clients sent, for `peakPerSecond`. */
  #arrivals: number[] = []
  #hour = { start: 0, count: 0 }
  #pastEnd: PastEndMode = 'poll-404'
  /** Every uuid issued since the last reset, so a poll of a dead uuid still counts for its page. */
  readonly #issued = new Map<string, { page: number, pastEnd: boolean }>()
  /**
   * With `keepPages`: each page's `results` as bytes, by everything that decides them. Data, not state: a reset keeps
   * them; {@link DrchronoSimulatorState.forgetPages} drops them.
   */
  readonly keptPages = new Map<string, Buffer>()

  constructor (options: DrchronoSimulatorOptions = {}) {
    super()
    this.options = options
    this.reset()
  }

  now (): number {
    return this.options.now?.() ?? Date.now()
  }

  /** Drops the pages `keepPages` kept (a benchmark, once its job has read them). */
  forgetPages (): void {
    this.keptPages.clear()
  }

  /** Back to the state right after start: no lists, zero counters, the configured tokens and faults. */
  reset (): void {
    this.lists.clear()
    this.stats = freshStats(STATS)
    this.resetTokens()
    this.#resetFaults(this.options.faults)
    this.#failGeneration.clear()
    this.#expireNext.clear()
    this.#recent = []
    this.#arrivals = []
    this.#hour = { start: 0, count: 0 }
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
  throttleNext (n: number, seconds?: number): void {
    this.#faults.throttleNext(n, seconds)
  }

  /** The next `n` /api requests answer `status` (502/503 plain text, 500 JSON). */
  failNext (n: number, status: InjectedStatus = 503): void {
    this.#faults.failNext(n, status)
  }

  /** Random faults on every /api request; ratios in 0..1, drawn from the seeded PRNG. */
  setFaultRatios (ratios: { throttle?: number, error?: number, errorStatus?: InjectedStatus }): void {
    this.#faults.setRatios({ throttle: ratios.throttle, error: ratios.error, status: ratios.errorStatus })
  }

  /** Whether 429s carry Retry-After (off: the adapter must read the wait from the body). */
  setRetryAfterHeader (on: boolean): void {
    this.#retryAfterHeader = on
  }

  get retryAfterHeader (): boolean {
    return this.#retryAfterHeader
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

  /** Accepted POSTs for one page of a resource (0 when none). */
  postsFor (resource: DrchronoResource, page: number): number {
    return this.stats.posts[`${resource}:${page}`] ?? 0
  }

  /** Total accepted POSTs of a resource. */
  totalPosts (resource: DrchronoResource): number {
    return totalOf(this.stats.posts, resource)
  }

  /** /api requests (POSTs and GETs, whatever their answer) for one page of a resource. */
  requestsFor (resource: DrchronoResource, page: number): number {
    return this.stats.requests[`${resource}:${page}`] ?? 0
  }

  /** All /api requests of a resource. */
  totalRequests (resource: DrchronoResource): number {
    return totalOf(this.stats.requests, resource)
  }

  /** Requests of a resource about pages past its list's end. */
  pastEndRequests (resource: DrchronoResource): number {
    return totalOf(this.stats.pastEnd, resource)
  }

  /** Rate limit, then injected faults; counters move with each verdict. Called after authentication. */
  verdict (): Verdict<{ seconds: number }> {
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
    return this.#faults.verdict(this.stats, seconds => ({ seconds }))
  }

  /**
   * Registers a new list for an accepted POST, arming any generation failure or expiry meant for its page.
   * `pastEnd` says how its polls refuse a page past the end of the list.
   */
  createList (resource: DrchronoResource, request: ListRequest, pastEnd?: ListEntry['pastEnd']): ListEntry {
    this.#count(this.stats.posts, `${resource}:${request.page}`)
    const entry: ListEntry = {
      ...request,
      resource,
      uuid: randomUUID(),
      createdAt: this.now(),
      polls: 0,
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

  #throttled (seconds: number): Verdict<{ seconds: number }> {
    this.stats.throttled++
    return { kind: 'throttle', seconds }
  }

  /** The faults of the options; the ratios draw from a PRNG seeded by the simulator's seed, so runs repeat. */
  #resetFaults (f: FaultOptions | undefined): void {
    this.#faults.reset({
      errors: f?.errorNext,
      status: f?.errorStatus,
      throttles: f?.throttleNext,
      throttleSeconds: f?.retryAfterSeconds,
      errorRatio: f?.errorRatio,
      throttleRatio: f?.throttleRatio,
      seed: this.options.seed,
    })
    this.#retryAfterHeader = f?.retryAfterHeader ?? true
  }
}
