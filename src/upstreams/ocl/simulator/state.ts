/**
 * The OCL simulator's mutable side: each version's export (none → queued → ready), the single-use signed
 * links it hands out, counters, and the faults tests inject. Everything a test steers is a method here.
 */
import { randomBytes } from 'node:crypto'
import type { SimDataOptions, SimSource } from './terminology.js'
import { ADMISSION_STATS, type InjectedStatus, type Verdict } from '../../simulator-kit/admission.js'
import { Countdown, InjectedFaults } from '../../simulator-kit/injected-faults.js'
import { DEFAULT_MAX_ENTRIES, remember } from '../../simulator-kit/bounds.js'
import { freshStats } from '../../simulator-kit/stats.js'

/**
 * The token a simulator started alone (tests, benchmarks) knows unless told another. Published: the gateway's
 * sandbox draws its own per process.
 */
export const SANDBOX_OCL_TOKEN = 'sandbox-ocl-token'

/**
 * How a ready export is offered: `302` (current oclapi2) or `303` redirect to the signed link; `zip200` the
 * zip in the GET's own body, or `exportUrl200` a 200 whose `exportURL` header holds the link (older servers).
 */
export type ReadyMode = '302' | '303' | 'zip200' | 'exportUrl200'

/**
 * What an injected 429 carries. oclapi2 throttles with Django REST framework (a sliding minute and a sliding day per
 * user): DRF sends Retry-After, and oclapi2's middleware adds X-LimitRemaining-Minute / X-LimitRemaining-Day. Which
 * of them really reach a client on a 429 is unconfirmed (that middleware skips both when the minute's remainder is
 * 0, and a proxy may drop Retry-After), so each is a setting and the adapter must finish its jobs under every one.
 */
export interface OclThrottleHeaders {
  /** DRF's `Retry-After: <retryAfterSeconds>`. Default true. */
  retryAfter: boolean
  /**
   * The X-LimitRemaining-* headers: `minute` = the minute's quota is spent (Minute: 0, Day: 9000), `day` = the
   * day's is (Minute: 12, Day: 0), `absent` = neither header. Default `minute`, as docs/UPSTREAMS.md describes OCL's 429.
   */
  limitRemaining: 'minute' | 'day' | 'absent'
}

/** What a simulator starts with; faults and modes can also be changed later through its state. */
export interface OclSimulatorOptions extends SimDataOptions {
  /** The token OCL knows; requests with another one get 401 "Invalid token.". */
  token?: string
  /** GETs answered 208 after an export is requested, before it is ready. Default 2. */
  exportPolls?: number
  readyMode?: ReadyMode
  /** How long a signed link works. Default 5 minutes. */
  signedTtlMs?: number
  /** A download sends this many bytes, then stalls until the client goes away (to test aborts). */
  stallDownloadAfterBytes?: number
  /** The Retry-After (seconds) of an injected 429. Default 1. */
  retryAfterSeconds?: number
  /** The headers of an injected 429. Default: Retry-After, and X-LimitRemaining-* saying the minute is spent. */
  throttleHeaders?: Partial<OclThrottleHeaders>
  /** Signed links kept; beyond it the oldest is forgotten (S3 then refuses it as a bad signature). Default 1000. */
  maxEntries?: number
  /** A ready export's link points here instead of at a signed link of the simulator's own (tests of the URL guard). */
  exportLinkOverride?: string
}

/** One version's export, once requested. */
export interface ExportEntry { state: 'queued' | 'ready', polls: number }

/** One signed download link. */
export interface SignedLink { id: string, signature: string, versionKey: string, expiresAt: number, used: boolean }

/** Counters tests assert on, at start; reset() brings them back. */
const STATS = {
  /** Requests to the OCL API (not the signed links), by path kind. */
  versionLookups: 0,
  exportGets: 0,
  exportPosts: 0,
  /** Exports that went from none to queued. */
  exportsCreated: 0,
  listRequests: 0,
  /** List requests whose limit was replaced by 25 (above 1000, or 0). */
  limitFallbacks: 0,
  ...ADMISSION_STATS,
  /** Signed links issued, downloads served (started), and downloads refused. */
  linksIssued: 0,
  downloads: 0,
  downloadsRefused: 0,
  /** Requests to a signed link that carried an Authorization header (refused with 403). */
  signedWithAuth: 0,
}

export type OclSimulatorStats = typeof STATS

/** A version's key in the simulator's maps. */
export const versionKey = (s: Pick<SimSource, 'ownerType' | 'owner' | 'source'>, version: string): string =>
  `${s.ownerType}/${s.owner}/${s.source}/${version}`

/** The simulator's state, shared between its HTTP handlers and the test that started it. */
export class OclSimulatorState {
  readonly options: Readonly<OclSimulatorOptions>
  readonly exports = new Map<string, ExportEntry>()
  readonly links = new Map<string, SignedLink>()
  stats: OclSimulatorStats = freshStats(STATS)
  token = SANDBOX_OCL_TOKEN
  readyMode: ReadyMode = '302'
  /** See {@link OclSimulatorOptions.exportLinkOverride}; null: the simulator's own signed link. */
  exportLinkOverride: string | null = null
  /** What an injected 429 carries; starts as the options say. */
  throttleHeaders: OclThrottleHeaders = { retryAfter: true, limitRemaining: 'minute' }
  #faults = new InjectedFaults<InjectedStatus>(503)
  readonly #staleNext = new Countdown()
  readonly #refuseDownloads = new Countdown()
  #loopNext = false
  readonly #passBeforeFaults = new Countdown()

  constructor (options: OclSimulatorOptions = {}) {
    this.options = options
    this.reset()
  }

  /** Back to the state right after start: no exports, no links, zero counters, no faults. */
  reset (): void {
    this.exports.clear()
    this.links.clear()
    this.stats = freshStats(STATS)
    this.token = this.options.token ?? SANDBOX_OCL_TOKEN
    this.readyMode = this.options.readyMode ?? '302'
    this.exportLinkOverride = this.options.exportLinkOverride ?? null
    this.throttleHeaders = { retryAfter: true, limitRemaining: 'minute', ...this.options.throttleHeaders }
    this.#faults.reset({ throttleSeconds: this.options.retryAfterSeconds })
    this.#staleNext.arm(0)
    this.#refuseDownloads.arm(0)
    this.#loopNext = false
    this.#passBeforeFaults.arm(0)
  }

  /**
   * The next `n` API requests answer 429, with the headers {@link throttleHeaders} names; after `after` requests
   * that pass untouched, to reach a request in the middle of a protocol (the export POST comes second).
   */
  throttleNext (n: number, opts: { after?: number } = {}): void {
    this.#faults.throttleNext(n)
    this.#passBeforeFaults.arm(opts.after ?? 0)
  }

  /** The next `n` API requests answer `status` (502/503 plain text, as a proxy; 500 as DRF's JSON). */
  failNext (n: number, status: InjectedStatus = 503): void {
    this.#faults.failNext(n, status)
  }

  /** An export that exists before the job starts: queued (answering 208 for `exportPolls` GETs) or ready. */
  seedExport (s: Pick<SimSource, 'ownerType' | 'owner' | 'source'>, version: string, state: ExportEntry['state']): void {
    this.exports.set(versionKey(s, version), { state, polls: 0 })
  }

  /**
   * The next `n` export GETs answer 204 whatever the export's state, as when another client requests the
   * export between our GET and our POST: the POST then meets 409 (queued) or 303 (ready).
   */
  staleNoExport (n: number): void { this.#staleNext.arm(n) }

  /** The next `n` downloads are refused with 403, as an expired or already used link is. */
  refuseDownloads (n: number): void { this.#refuseDownloads.arm(n) }

  /** List `next` headers point at the page they are on: a pagination loop. */
  loopNextLinks (on = true): void { this.#loopNext = on }

  get loopingNext (): boolean { return this.#loopNext }

  /** Injected faults, consumed one per API request; counters move with them. */
  verdict (): Verdict<{ seconds: number }> {
    if (this.#passBeforeFaults.take()) return { kind: 'pass' }
    return this.#faults.verdict(this.stats, seconds => ({ seconds }))
  }

  /** Whether this export GET must pretend no export exists. */
  takeStale (): boolean {
    return this.#staleNext.take()
  }

  /** Whether this download must be refused. */
  takeRefusal (): boolean {
    return this.#refuseDownloads.take()
  }

  /** A fresh single-use link to a version's export file. */
  issueLink (key: string): SignedLink {
    const link: SignedLink = {
      id: randomBytes(9).toString('base64url'),
      signature: randomBytes(24).toString('hex'),
      versionKey: key,
      expiresAt: Date.now() + (this.options.signedTtlMs ?? 300_000),
      used: false,
    }
    remember(this.links, link.id, link, this.options.maxEntries ?? DEFAULT_MAX_ENTRIES)
    this.stats.linksIssued++
    return link
  }
}
