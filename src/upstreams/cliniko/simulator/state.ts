/**
 * The Cliniko simulator's mutable side: accepted keys, the per-key rate limit, counters, and the faults tests
 * inject (429s, 5xx, a next link that loops, a page that repeats). Everything a test can steer is a method here.
 */
import type { DataOptions } from './lists.js'
import { keyWithoutShard } from '../env.js'
import { ADMISSION_STATS, type InjectedStatus, type Verdict } from '../../simulator-kit/admission.js'
import { InjectedFaults } from '../../simulator-kit/injected-faults.js'
import { COUNTERS_PER_ENTRY, DEFAULT_MAX_ENTRIES, countUnder } from '../../simulator-kit/bounds.js'
import { byKey, freshStats, totalOf } from '../../simulator-kit/stats.js'

/**
 * The API key a simulator started alone (tests, benchmarks) accepts unless told others: its `-au1` suffix matches the
 * shard the simulator plays by default. Published: the gateway's sandbox draws its own per process.
 */
export const SANDBOX_API_KEY = 'MS0xLXNhbmRib3hDbGluaWtvS2V5-au1'

/** The User-Agent the sandbox adapter sends (not a secret: Cliniko asks integrators to name themselves). */
export const SANDBOX_USER_AGENT = 'bulk-gateway sandbox (sandbox@bulk-gateway.invalid)'

/**
 * The headers a 429 carries. Cliniko documents X-RateLimit-Reset (UNIX seconds) and nothing else, but whether
 * every 429 has it (one from a proxy or a WAF in front of Cliniko may not), and whether a Retry-After comes too,
 * cannot be checked: each combination is a setting, and an adapter must finish its jobs under all four.
 */
export interface ClinikoThrottleHeaders {
  /** `X-RateLimit-Reset: <UNIX seconds>`. Default true, as documented. */
  rateLimitReset: boolean
  /** `Retry-After: <seconds until the reset>`. Default false: Cliniko does not document one. */
  retryAfter: boolean
}

/**
 * A 401's body: Rails' plain text (`HTTP Basic: Access denied.`) as docs/UPSTREAMS.md says, or JSON
 * (`{"message":"Unauthorized"}` as Cliniko's other errors are JSON), which is just as plausible: unconfirmed.
 */
export type UnauthorizedBody = 'text' | 'json'

export interface ClinikoSimulatorOptions extends DataOptions {
  /** The shard this simulator plays; keys of another shard get a plain 401. Default au1. */
  shard?: string
  /** Keys it accepts (with or without their shard suffix). Default: the sandbox key. */
  apiKeys?: string[]
  /** Requests per window per user before 429, as Cliniko's 200 a minute. 0 = off. Default 200. */
  rateLimit?: number
  /** The rate limit's sliding window. Default 60 000. */
  rateWindowMs?: number
  /** A wait before each list page is answered, so sandbox jobs take a visible while. Default 0. */
  latencyMs?: number
  /** The next N list requests answer 429 (after authentication), each with X-RateLimit-Reset `throttleSeconds` ahead. */
  throttleNext?: number
  throttleSeconds?: number
  /** The next N list requests answer `errorStatus` (500 as Rails' HTML page, 502/503 plain text). */
  errorNext?: number
  errorStatus?: InjectedStatus
  /** The headers of every 429, from the rate limit or injected. Default: X-RateLimit-Reset only. */
  throttleHeaders?: Partial<ClinikoThrottleHeaders>
  /** The body of every 401. Default 'text'. */
  unauthorizedBody?: UnauthorizedBody
  /** The clock, for the rate limit. */
  now?: () => number
  /** Counters by page keep ten times this many keys, the oldest forgotten beyond. Default 1000. */
  maxEntries?: number
}

/** The simulator's counters at start; reset() brings them back. */
const STATS = {
  /** Pages answered 200, by `${resource}:${page}`. */
  pages: byKey(),
  ...ADMISSION_STATS,
  forbidden: 0,
  notAcceptable: 0,
  /** 429s from the rate limit only (`throttled` counts them with the injected ones). */
  rateLimited: 0,
  /** 422 Validation Failed answers. */
  rejected: 0,
  /** The most requests of one user that one window ever held (rate-limited ones included). */
  peakInWindow: 0,
  /** X-RateLimit-Reset of the last 429 (UNIX seconds), or null. */
  lastReset: null as number | null,
}

export type ClinikoSimulatorStats = typeof STATS

/** One answered request, for tests that check timing (e.g. that a retry waited for X-RateLimit-Reset). */
export interface RequestLogEntry { at: number, status: number }

export class ClinikoSimulatorState {
  readonly options: Readonly<ClinikoSimulatorOptions>
  stats: ClinikoSimulatorStats = freshStats(STATS)
  /** The last 1000 answers, oldest first. */
  log: RequestLogEntry[] = []
  #keys = new Set<string>()
  #windows = new Map<string, number[]>()
  #faults = new InjectedFaults<InjectedStatus>(503)
  #loops = new Map<number, number>()
  #repeats = new Set<number>()
  /** What every 429 carries; starts as the options say, a test may change it mid-way. */
  throttleHeaders: ClinikoThrottleHeaders = { rateLimitReset: true, retryAfter: false }
  /** The body of every 401; starts as the options say. */
  unauthorizedBody: UnauthorizedBody = 'text'

  constructor (options: ClinikoSimulatorOptions = {}) {
    this.options = options
    this.reset()
  }

  get shard (): string {
    return this.options.shard ?? 'au1'
  }

  now (): number {
    return this.options.now?.() ?? Date.now()
  }

  /** Back to the state right after start: zero counters, the configured keys and faults, no loops. */
  reset (): void {
    this.stats = freshStats(STATS)
    this.log = []
    this.#keys = new Set((this.options.apiKeys ?? [SANDBOX_API_KEY]).map(keyWithoutShard))
    this.#windows.clear()
    const o = this.options
    this.#faults.reset({ errors: o.errorNext, status: o.errorStatus, throttles: o.throttleNext, throttleSeconds: o.throttleSeconds })
    this.#loops.clear()
    this.#repeats.clear()
    this.throttleHeaders = { rateLimitReset: true, retryAfter: false, ...this.options.throttleHeaders }
    this.unauthorizedBody = this.options.unauthorizedBody ?? 'text'
  }

  /** Whether a key (shard suffix stripped) belongs to a user of this clinic. */
  knows (apiKey: string): boolean {
    return this.#keys.has(keyWithoutShard(apiKey))
  }

  /** The next `n` list requests answer 429 with X-RateLimit-Reset `seconds` from now. */
  throttleNext (n: number, seconds?: number): void {
    this.#faults.throttleNext(n, seconds)
  }

  /** The next `n` list requests answer `status`. */
  failNext (n: number, status: InjectedStatus = 503): void {
    this.#faults.failNext(n, status)
  }

  /** Page `atPage` of every list links to page `toPage` as its next page: a pagination loop. */
  loopNext (atPage: number, toPage: number): void {
    this.#loops.set(atPage, toPage)
  }

  /** Page `page` of every list repeats the records of the page before it. */
  repeatPage (page: number): void {
    this.#repeats.add(page)
  }

  /** The page number `page`'s next link names (normally page + 1). */
  nextPageOf (page: number): number {
    return this.#loops.get(page) ?? page + 1
  }

  repeats (page: number): boolean {
    return this.#repeats.has(page)
  }

  /** Counts one page of a resource answered 200. */
  countPage (resource: string, page: number): void {
    countUnder(this.stats.pages, `${resource}:${page}`, (this.options.maxEntries ?? DEFAULT_MAX_ENTRIES) * COUNTERS_PER_ENTRY)
  }

  /** How often page `page` of a resource was answered 200. */
  pagesServed (resource: string, page: number): number {
    return this.stats.pages[`${resource}:${page}`] ?? 0
  }

  /** Total 200 pages of a resource. */
  totalPages (resource: string): number {
    return totalOf(this.stats.pages, resource)
  }

  /** Rate limit, then injected faults, for an authenticated user. Every request counts against the limit. */
  verdict (apiKey: string): Verdict<{ resetAt: number }> {
    const now = this.now()
    const limit = this.options.rateLimit ?? 200
    if (limit > 0) {
      const windowMs = this.options.rateWindowMs ?? 60_000
      const user = keyWithoutShard(apiKey)
      const sent = (this.#windows.get(user) ?? []).filter(t => t > now - windowMs)
      sent.push(now)
      this.#windows.set(user, sent)
      this.stats.peakInWindow = Math.max(this.stats.peakInWindow, sent.length)
      if (sent.length > limit) {
        this.stats.rateLimited++
        this.stats.throttled++
        // The moment the window holds limit - 1 of these requests again, so one more fits.
        return { kind: 'throttle', resetAt: (sent[sent.length - limit] as number) + windowMs }
      }
    }
    return this.#faults.verdict(this.stats, seconds => ({ resetAt: now + seconds * 1000 }))
  }

  /** Notes an answer in the log. */
  answered (status: number): void {
    this.log.push({ at: this.now(), status })
    if (this.log.length > 1000) this.log.shift()
  }
}
