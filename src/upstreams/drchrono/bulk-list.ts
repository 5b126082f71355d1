/**
 * One page of a DrChrono bulk list: POST it (201 + uuid), poll `GET ?uuid=` (see pace.ts) until it is Complete,
 * and POST it again when its uuid dies (404 "Invalid uuid specified": lists live an hour) or its generation fails
 * (500 `{"status":"Error"|"Failed"}`). Transient 429/5xx/network failures are the client's to retry.
 *
 * A page may lie past the end of the list while the list's size is unknown (the adapter asks a few pages before
 * any has told it). How DrChrono refuses such a page is undocumented: a 404 "Invalid page." on the POST or on the
 * poll, a Complete page without results, or a 500 "Failed" (docs/UPSTREAMS.md). So such a page is POSTed (its list
 * generates meanwhile) but not polled until the size is known; a refusal is then dropped for a page past the end,
 * and held for the adapter to ask again when it came before the size was known.
 */
import type { RecordSpans } from '../../contract/adapter.js'
import type { Logger } from 'pino'
import { sleep } from '../../lib/time.js'
import type { UpstreamResponse } from '../http.js'
import type { BudgetTaker } from '../request-budget.js'
import { statusError } from '../status-codes.js'
import { memberValue, scanObject, type ScannedObject } from '../json-records.js'
import { UpstreamError } from '../../domain/errors.js'
import type { DrchronoAuth } from './auth.js'
import type { GenerationPace, PagePace } from './pace.js'
import { isObject } from '../../lib/values.js'

/** How a page is waited for and how often it may be generated again. */
export interface PollOptions {
  /** No first poll of a uuid before this long after its POST's answer (see pace.ts for the rest of the pace). */
  pollInitialMs: number
  /** No wait between polls is longer. */
  pollMaxMs: number
  /** Polls of one uuid before giving up with upstream_timeout. */
  maxPolls: number
  /** Re-POSTs of a page after failed generations before failing with upstream_failed. */
  maxRegenerations: number
  /** Re-POSTs of a page after its uuid expired before failing with upstream_failed. */
  maxResubmits: number
}

/** A Complete page: its records as DrChrono wrote them (UTF-8 bytes), and the list's totals as this page reported them. */
export interface ListPage {
  page: number
  /** Pages in the list; at least 1 (an empty list still has an empty page 1). */
  pages: number
  count: number
  /** Spans of the response's body. */
  records: RecordSpans
  /** Gives the body back once the records are saved (UpstreamResponse.release). */
  release: () => void
}

/**
 * What became of one page: read; past the list's known end (nothing to store); or refused before the list's
 * size was known (ask for it again if it turns out to exist, carrying the generations that already failed).
 */
export type PageOutcome =
  | { kind: 'complete', page: ListPage }
  | { kind: 'past-end' }
  | { kind: 'held', regenerations: number }

export interface PageTarget {
  /** e.g. https://app.drchrono.com/api/appointments_list */
  listUrl: string
  /** Filters, order_by, verbose and page_size; the page number is added per request. */
  query: URLSearchParams
  page: number
  signal: AbortSignal
  log: Logger
  /** Shared by the pages of one job: how long its pages take to generate. */
  pace: GenerationPace
  /** Pages in the list, once any page has told; null before. */
  lastPage (): number | null
  /** Resolves once some page has told the list's size; rejects when `signal` aborts first. */
  untilSized (signal: AbortSignal): Promise<unknown>
  /** Generations of this page that failed before it was held: they count toward maxRegenerations. */
  regenerations?: number
  /** The most bytes this page's answer may have: its share of the job's bytes in flight. */
  maxResponseBytes?: number
  /** Who spends DrChrono's request budget: the job (and its client). */
  taker?: BudgetTaker
}

type PollOutcome =
  | { kind: 'complete', page: ListPage }
  | { kind: 'expired' }
  | { kind: 'failed' }
  /** A 404 other than "Invalid uuid specified": see {@link isExpiredUuid}. */
  | { kind: 'not-there', res: UpstreamResponse }

const TRANSIENT = new Set([429, 500, 502, 503, 504])
/** A list expired this long after its POST died of old age (DrChrono keeps a list an hour), not of a fault. */
const OLD_LIST_MS = 50 * 60_000
const THROTTLE_WAIT = /Expected available in (\d+(?:\.\d+)?) seconds?/

function jsonOf (res: UpstreamResponse): unknown {
  try {
    return JSON.parse(res.text())
  } catch {
    return undefined
  }
}

/** A list that DrChrono failed to build: 500 `{"status":"Error"|"Failed", ...}` (poll() also accepts it as a 200). */
function isGenerationFailure (res: UpstreamResponse): boolean {
  if (res.status !== 500) return false
  const body = jsonOf(res)
  return isObject(body) && (body.status === 'Error' || body.status === 'Failed')
}

/** Transient answers go back to the client's retry loop; a failed generation must be re-POSTed instead. */
const retryable = (res: UpstreamResponse): boolean => TRANSIENT.has(res.status) && !isGenerationFailure(res)

/** DrChrono's 429 says how long to wait in its body ("Expected available in 3 seconds."). */
export function throttleWaitMs (res: UpstreamResponse): number | undefined {
  const m = THROTTLE_WAIT.exec(res.text())
  return m ? Math.ceil(Number(m[1]) * 1000) : undefined
}

/** What a refusal means, in the gateway's words: DrChrono's body is never quoted (its messages may echo filter values). */
const HINTS: Record<number, string> = {
  401: '; the access token was refused',
  403: '; the token\'s user lacks permission for this list',
  404: '; DrChrono does not know this list or page',
}

/** An answer the protocol has no use for, as a stable error; the message names the status, never the body. */
export function unexpected (res: UpstreamResponse, what: string): UpstreamError {
  if (res.status >= 400 && res.status < 500) return statusError(res.status, `${what}: DrChrono answered ${res.status}${HINTS[res.status] ?? ''}`)
  if (res.status >= 500) return statusError(res.status, `${what}: DrChrono answered ${res.status}`)
  return statusError(res.status, `${what}: DrChrono answered ${res.status} unexpectedly`)
}

const invalid = (what: string, why: string, status: number): UpstreamError =>
  new UpstreamError('invalid_upstream_response', `${what}: ${why}`, status)

const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0

/** Reads a Complete body; its records are cut out as DrChrono wrote them (no parse, no re-serialisation). */
function completePage (res: UpstreamResponse, body: ScannedObject, page: number, what: string): ListPage {
  const p = memberValue(body, 'pagination')
  if (!isObject(p) || !count(p.count) || !count(p.pages) || !count(p.page)) {
    throw invalid(what, 'Complete answer without a valid "pagination" object', res.status)
  }
  if (body.elements === undefined) throw invalid(what, 'Complete answer without a "results" array', res.status)
  if (p.page !== page) throw invalid(what, `asked for page ${page}, DrChrono answered page ${p.page}`, res.status)
  return { page, pages: Math.max(1, p.pages), count: p.count, records: body.elements, release: res.release }
}

/** A poll answer: one pass over the body, which may be a whole page of records. */
function pollBody (res: UpstreamResponse, what: string): ScannedObject {
  try {
    return scanObject(res.body, 'results')
  } catch (err) {
    if (err instanceof UpstreamError) throw invalid(what, 'poll answer is not a JSON object', res.status)
    throw err
  }
}

/**
 * Whether a 404 says the uuid expired, the one 404 that asks for a new POST. DrChrono documents its wording,
 * "Invalid uuid specified"; a trailing period or another case is tolerated. Any other 404 (DRF's "Invalid page."
 * for a page past the end, DRF's "Not found.", a proxy's HTML page, a wording nobody has seen) is read as "this
 * page is not there" and never re-POSTed: dropped for a page past the known end, held while the size is unknown,
 * and a failure, with DrChrono's detail, for a page that must exist. A misread 404 then costs at most one more
 * POST of the page, never a loop through the hourly budget, and a wrong base URL fails on page 1.
 */
function isExpiredUuid (res: UpstreamResponse): boolean {
  const body = jsonOf(res)
  return isObject(body) && typeof body.detail === 'string' && /^\s*invalid uuid specified\.?\s*$/i.test(body.detail)
}

/** Whether the page exists: page 1 always does; a later one once the list's size is known; undefined before. */
function exists (t: PageTarget): boolean | undefined {
  if (t.page === 1) return true
  const pages = t.lastPage()
  return pages === null ? undefined : t.page <= pages
}

/**
 * A 404 that is not an expired uuid (see {@link isExpiredUuid}) for a request sent when the page's existence was
 * `knownAtSend`. An answer to a request sent before the size was known is held even if the size is known by now:
 * it may describe the list before DrChrono had counted it, and asking once more settles it.
 */
function notThere (t: PageTarget, res: UpstreamResponse, knownAtSend: boolean | undefined, regenerations: number, what: string): PageOutcome {
  const known = exists(t)
  if (known === false) return { kind: 'past-end' }
  if (known === undefined || knownAtSend === undefined) return { kind: 'held', regenerations }
  const body = jsonOf(res)
  if (t.page > 1 && isObject(body) && body.detail === 'Invalid page.') {
    throw invalid(what, `DrChrono refused the page as past the end of the list, which earlier pages said has ${t.lastPage()} pages: the list changed while it was read; submit the job again`, 404)
  }
  throw unexpected(res, what)
}

/** The page's uuid, or the 404 DrChrono refused the POST with. */
async function submit (auth: DrchronoAuth, t: PageTarget, what: string): Promise<{ uuid: string } | { refused: UpstreamResponse }> {
  const url = new URL(t.listUrl)
  url.search = t.query.toString()
  url.searchParams.set('page', String(t.page))
  const res = await auth.send({
    method: 'POST',
    url,
    signal: t.signal,
    retryable,
    retryAfterMs: throttleWaitMs,
    taker: t.taker,
    // DrChrono's own example sends this header with an empty body; some proxies insist on a content type.
    headers: { 'content-type': 'application/json' },
  })
  if (res.status === 404) return { refused: res }
  if (res.status < 200 || res.status >= 300) throw unexpected(res, what)
  const body = jsonOf(res)
  if (!isObject(body) || typeof body.uuid !== 'string' || body.uuid === '') throw invalid(what, 'POST answer without a "uuid"', res.status)
  return { uuid: body.uuid }
}

/**
 * What a 200 poll answer says. DrChrono documents "Complete" with `pagination` and `results`, and "In progress"
 * while the list is built, but the exact in-progress body is UNCONFIRMED: the status is read without regard to
 * case, a failure may come as "Error", "Failed" or "Failure", a body with no status but both `pagination` and
 * `results` is a Complete page, and anything else (another wording, a status of another family such as PENDING,
 * only a `detail`) means not ready yet. A page that never completes ends at maxPolls with upstream_timeout.
 */
function pollState (body: ScannedObject, res: UpstreamResponse, what: string): 'complete' | 'failed' | 'in-progress' {
  const status = memberValue(body, 'status')
  // Another wording is unconfirmed; a status that is not text at all is a broken answer.
  if (status !== undefined && typeof status !== 'string') throw invalid(what, 'poll answer whose "status" is not a string', res.status)
  const word = status?.trim().toLowerCase()
  if (word === 'error' || word === 'failed' || word === 'failure') return 'failed'
  if (word === 'complete' || word === 'completed') return 'complete'
  if (word === undefined && body.elements !== undefined && isObject(memberValue(body, 'pagination'))) return 'complete'
  return 'in-progress'
}

/** Polls one uuid as `clock` paces it; times are counted from `answeredAt`, when its POST was answered. */
async function poll (auth: DrchronoAuth, t: PageTarget, uuid: string, answeredAt: number, clock: PagePace, o: PollOptions, what: string): Promise<PollOutcome> {
  const url = new URL(t.listUrl)
  url.searchParams.set('uuid', uuid)
  for (let n = 1; n <= o.maxPolls; n++) {
    await sleep(clock.nextWaitMs(performance.now() - answeredAt), t.signal)
    const sent = performance.now() - answeredAt
    const res = await auth.send({ method: 'GET', url, signal: t.signal, retryable, retryAfterMs: throttleWaitMs, taker: t.taker, maxResponseBytes: t.maxResponseBytes })
    if (res.status === 404) return isExpiredUuid(res) ? { kind: 'expired' } : { kind: 'not-there', res }
    if (res.status !== 200) {
      if (isGenerationFailure(res)) return { kind: 'failed' }
      throw unexpected(res, what)
    }
    const body = pollBody(res, what)
    const state = pollState(body, res, what)
    if (state === 'failed') return { kind: 'failed' } // defensively, a failure answered 200
    if (state === 'complete') {
      const page = completePage(res, body, t.page, what)
      clock.complete(performance.now() - answeredAt)
      return { kind: 'complete', page }
    }
    clock.inProgress(sent)
  }
  throw new UpstreamError('upstream_timeout', `${what}: still not Complete after ${o.maxPolls} polls`)
}

/**
 * Fetches one page, generating it again as often as the options allow. A page that may lie past the end is not
 * polled before the list's size is known: it costs its POST only, whichever way DrChrono refuses it.
 */
export async function fetchListPage (auth: DrchronoAuth, t: PageTarget, o: PollOptions): Promise<PageOutcome> {
  const what = `DrChrono ${new URL(t.listUrl).pathname} page ${t.page}`
  let regenerations = t.regenerations ?? 0
  let resubmits = 0
  for (;;) {
    const knownAtSend = exists(t)
    const submitted = await submit(auth, t, what)
    if ('refused' in submitted) return notThere(t, submitted.refused, knownAtSend, regenerations, what)
    const answeredAt = performance.now()
    if (exists(t) === undefined) {
      await t.untilSized(t.signal)
      if (exists(t) === false) return { kind: 'past-end' }
    }
    const clock = t.pace.page()
    let outcome: PollOutcome
    try {
      outcome = await poll(auth, t, submitted.uuid, answeredAt, clock, o, what)
    } finally {
      clock.end()
    }
    if (outcome.kind === 'complete') return outcome
    // Polled only once its existence was known (page 1, or after the wait above).
    if (outcome.kind === 'not-there') return notThere(t, outcome.res, true, regenerations, what)
    if (outcome.kind === 'expired') {
      // A list lives an hour: one that died after most of it (its polls waited on the hourly budget) expired
      // of old age, as the gateway let it; only lists that die young count toward giving up.
      if (performance.now() - answeredAt < OLD_LIST_MS && ++resubmits > o.maxResubmits) {
        throw new UpstreamError('upstream_failed', `${what}: the list expired (404 Invalid uuid specified) ${resubmits} times before it could be read`, 404)
      }
      t.log.info({ page: t.page, resubmits }, 'drchrono list uuid expired; submitting the page again')
      continue
    }
    // A failed generation past the end is how some DrChrono may refuse such a page: nothing to retry.
    const known = exists(t)
    if (known === false) return { kind: 'past-end' }
    if (known === undefined) return { kind: 'held', regenerations: regenerations + 1 }
    if (++regenerations > o.maxRegenerations) {
      throw new UpstreamError('upstream_failed', `${what}: DrChrono failed to generate the list ${regenerations} times`, 500)
    }
    t.log.info({ page: t.page, regenerations }, 'drchrono list generation failed; submitting the page again')
  }
}
