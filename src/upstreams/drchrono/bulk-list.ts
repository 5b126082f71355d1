/**
 * One page of a DrChrono bulk list: POST it (201 + uuid), poll `GET ?uuid=` (see GenerationPace) until it is
 * Complete, and POST it again when its uuid dies (404 "Invalid uuid specified": lists live an hour) or its
 * generation fails (500 `{"status":"Error"}`). Transient 429/5xx/network failures are the client's to retry.
 */
import type { Logger } from 'pino'
import { sleep } from '../backoff.js'
import type { UpstreamResponse } from '../http.js'
import { memberValue, scanObject, type ScannedObject } from '../json-records.js'
import { UpstreamError } from '../types.js'
import type { DrchronoAuth } from './auth.js'

/** How a page is waited for and how often it may be generated again. */
export interface PollOptions {
  /** Shortest wait before the first poll of a uuid, and the wait after the first "In progress"; doubled after each further one. */
  pollInitialMs: number
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
  records: Buffer[]
}

export interface PageTarget {
  /** e.g. https://app.drchrono.com/api/appointments_list */
  listUrl: string
  /** Filters, order_by, verbose and page_size; the page number is added per request. */
  query: URLSearchParams
  page: number
  signal: AbortSignal
  log: Logger
  /** Shared by the pages of one job: how long its pages have taken to generate. */
  pace: GenerationPace
  /**
   * Asked before the list's size is known: DrChrono refuses a page past the last one (404 "Invalid page."), and
   * that answer then means "no such page" rather than a failure.
   */
  mayBePastEnd?: boolean
}

/**
 * When to poll a page. The pages of one list take about as long as each other to generate, so after the first
 * page the first poll waits about as long as the quickest page took (from its POST's answer to the poll that saw it
 * Complete), instead of polling early and doubling past the moment it was ready. Never below `pollInitialMs`, so
 * a fast list costs no more polls than before.
 */
export class GenerationPace {
  #quickestMs: number | undefined

  /** A page was seen Complete `ms` after its POST was answered. */
  observe (ms: number): void {
    if (this.#quickestMs === undefined || ms < this.#quickestMs) this.#quickestMs = ms
  }

  /** The wait before poll `n` (from 1) of a uuid. */
  waitMs (n: number, o: Pick<PollOptions, 'pollInitialMs' | 'pollMaxMs'>): number {
    if (n === 1) {
      // A little under the quickest page: polling just before a page is ready costs one poll, just after costs time.
      const expected = this.#quickestMs === undefined ? 0 : 0.9 * this.#quickestMs
      return Math.min(o.pollMaxMs, Math.max(o.pollInitialMs, expected))
    }
    return Math.min(o.pollMaxMs, o.pollInitialMs * 2 ** Math.min(n - 2, 30))
  }
}

type PollOutcome = { kind: 'complete', page: ListPage } | { kind: 'expired' } | { kind: 'failed' }

const TRANSIENT = new Set([429, 500, 502, 503, 504])
const THROTTLE_WAIT = /Expected available in (\d+(?:\.\d+)?) seconds?/

function jsonOf (res: UpstreamResponse): unknown {
  try {
    return JSON.parse(res.text())
  } catch {
    return undefined
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

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

/**
 * An answer the protocol has no use for, as a stable error. The message names DrChrono's `detail` or the
 * rejected field names only: field messages may echo filter values such as a patient's name.
 */
export function unexpected (res: UpstreamResponse, what: string): UpstreamError {
  const body = jsonOf(res)
  const why = isObject(body)
    ? typeof body.detail === 'string' ? `: ${body.detail.slice(0, 200)}` : `: invalid ${Object.keys(body).slice(0, 10).join(', ')}`
    : ''
  if (res.status === 401) return new UpstreamError('upstream_unauthorized', `${what}: DrChrono answered 401${why}`, 401)
  if (res.status >= 400 && res.status < 500) return new UpstreamError('upstream_rejected', `${what}: DrChrono answered ${res.status}${why}`, res.status)
  if (res.status >= 500) return new UpstreamError('upstream_failed', `${what}: DrChrono answered ${res.status}`, res.status)
  return new UpstreamError('invalid_upstream_response', `${what}: DrChrono answered ${res.status} unexpectedly`, res.status)
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
  return { page, pages: Math.max(1, p.pages), count: p.count, records: body.elements }
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

/** The page's uuid, or null when DrChrono refused a page asked for with `mayBePastEnd`. */
async function submit (auth: DrchronoAuth, t: PageTarget, what: string): Promise<string | null> {
  const url = new URL(t.listUrl)
  url.search = t.query.toString()
  url.searchParams.set('page', String(t.page))
  const res = await auth.send({
    method: 'POST', url, signal: t.signal, retryable, retryAfterMs: throttleWaitMs,
    // DrChrono's own example sends this header with an empty body; some proxies insist on a content type.
    headers: { 'content-type': 'application/json' },
  })
  if (res.status === 404 && t.mayBePastEnd === true) return null
  if (res.status < 200 || res.status >= 300) throw unexpected(res, what)
  const body = jsonOf(res)
  if (!isObject(body) || typeof body.uuid !== 'string' || body.uuid === '') throw invalid(what, 'POST answer without a "uuid"', res.status)
  return body.uuid
}

async function poll (auth: DrchronoAuth, t: PageTarget, uuid: string, o: PollOptions, what: string): Promise<PollOutcome> {
  const url = new URL(t.listUrl)
  url.searchParams.set('uuid', uuid)
  for (let n = 1; n <= o.maxPolls; n++) {
    await sleep(t.pace.waitMs(n, o), t.signal)
    const res = await auth.send({ method: 'GET', url, signal: t.signal, retryable, retryAfterMs: throttleWaitMs })
    if (res.status === 404) return { kind: 'expired' }
    if (res.status !== 200) {
      if (isGenerationFailure(res)) return { kind: 'failed' }
      throw unexpected(res, what)
    }
    const body = pollBody(res, what)
    const status = memberValue(body, 'status')
    if (typeof status !== 'string') throw invalid(what, 'poll answer without a "status"', res.status)
    if (status === 'Error' || status === 'Failed') return { kind: 'failed' } // defensively, a failure answered 200
    if (status === 'Complete') return { kind: 'complete', page: completePage(res, body, t.page, what) }
    // Anything else ("In progress" as documented; the exact wording is unconfirmed) means not ready yet.
  }
  throw new UpstreamError('upstream_timeout', `${what}: still not Complete after ${o.maxPolls} polls`)
}

/**
 * Fetches one Complete page, generating it again as often as the options allow. Null when the page was asked for
 * with `mayBePastEnd` and DrChrono refused it as past the last page.
 */
export async function fetchListPage (auth: DrchronoAuth, t: PageTarget, o: PollOptions): Promise<ListPage | null> {
  const what = `DrChrono ${new URL(t.listUrl).pathname} page ${t.page}`
  let regenerations = 0
  let resubmits = 0
  for (;;) {
    const uuid = await submit(auth, t, what)
    if (uuid === null) return null
    const submitted = performance.now()
    const outcome = await poll(auth, t, uuid, o, what)
    if (outcome.kind === 'complete') {
      t.pace.observe(performance.now() - submitted)
      return outcome.page
    }
    if (outcome.kind === 'expired') {
      if (++resubmits > o.maxResubmits) {
        throw new UpstreamError('upstream_failed', `${what}: the list expired (404 Invalid uuid specified) ${resubmits} times before it could be read`, 404)
      }
      t.log.info({ page: t.page, resubmits }, 'drchrono list uuid expired; submitting the page again')
    } else {
      if (++regenerations > o.maxRegenerations) {
        throw new UpstreamError('upstream_failed', `${what}: DrChrono failed to generate the list ${regenerations} times`, 500)
      }
      t.log.info({ page: t.page, regenerations }, 'drchrono list generation failed; submitting the page again')
    }
  }
}
