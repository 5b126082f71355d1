/**
 * Runs a Cliniko list job: GET the first page with the job's params, then follow `links.next` until a page has
 * none. Cliniko's pages are read one after another (each next link comes from the page before), and each is
 * saved with a checkpoint holding the next link, so a resumed job continues exactly where the last save left it.
 * All jobs of the process share one request budget per API key, as Cliniko counts requests per user.
 */
import { createHash } from 'node:crypto'
import type { UpstreamClient, UpstreamResponse } from '../http.js'
import type { BudgetSpec } from '../request-budget.js'
import { arrayElements, memberValue, scanObject } from '../json-records.js'
import { statusError } from '../status-codes.js'
import { PaginationGuard } from '../pagination.js'
import { budgetTaker, type UpstreamServices } from '../types.js'
import { UpstreamError } from '../../domain/errors.js'
import type { JobContext, RecordSpans, UpstreamAdapter } from '../../contract/adapter.js'
import { CLINIKO_LISTS, DEFAULT_PER_PAGE, clinikoParams, type ClinikoParams } from './params.js'
import type { ClinikoSettings } from './env.js'
import { isObject } from '../../lib/values.js'
import { jobParams } from '../job-params.js'

export type { ClinikoSettings } from './env.js'

/** What a job saves with each page; handed back on resume. */
export interface ClinikoCheckpoint {
  /** The next page's URL as Cliniko sent it, or null once the last page is saved. */
  next: string | null
  /** Pages saved so far (the number of the last one). */
  page: number
  /** `total_entries` as the last page reported it. */
  total: number | null
}

interface Envelope { records: RecordSpans, total: number | null, next: string | null }

function readCheckpoint (raw: unknown): ClinikoCheckpoint | null {
  if (!isObject(raw) || !Number.isSafeInteger(raw.page) || (raw.page as number) < 1) return null
  if (raw.next !== null && typeof raw.next !== 'string') return null
  const total = Number.isSafeInteger(raw.total) && (raw.total as number) >= 0 ? raw.total as number : null
  return { next: raw.next, page: raw.page as number, total }
}

/** The first page's URL: the job's params as Cliniko reads them, `q[]` repeated. */
function firstPageUrl (base: string, resource: string, params: ClinikoParams): URL {
  const url = new URL(`${base}/${CLINIKO_LISTS[resource as keyof typeof CLINIKO_LISTS].path}`)
  for (const filter of params.q ?? []) url.searchParams.append('q[]', filter)
  if (params.sort !== undefined) url.searchParams.set('sort', params.sort)
  if (params.order !== undefined) url.searchParams.set('order', params.order)
  url.searchParams.set('per_page', String(params.per_page))
  return url
}

/**
 * One spelling per page for the loop guard: Cliniko may order the query differently from us, and page 1 is
 * page 1 whether or not it says so.
 */
function pageIdentity (url: URL): string {
  const q = new URLSearchParams(url.search)
  if (!q.has('page')) q.set('page', '1')
  q.sort()
  return `${url.origin}${url.pathname}?${q.toString()}`
}

/**
 * A failed answer as a stable error, decided by its status alone: the body is never quoted (a 422's messages,
 * and even its field names, are Cliniko's text, which may repeat filter values such as a patient's name), and
 * docs/UPSTREAMS.md has Cliniko's 401 body as plain text, unconfirmed, so a JSON one must end the same way.
 */
function failure (res: UpstreamResponse, where: string): UpstreamError {
  const s = res.status
  if (s === 401) return statusError(s, `${where}: Cliniko refused the API key (401); check CLINIKO_API_KEY and that its shard matches the URL`)
  if (s === 403) return statusError(s, `${where}: Cliniko refused the request (403): the key's user lacks permission, or the User-Agent was not accepted`)
  if (s === 422) return statusError(s, `${where}: Cliniko answered 422 Validation Failed; check the job's q[], sort and order params`)
  if (s >= 300 && s < 400) return statusError(s, `${where}: Cliniko redirected (${s}); is the shard or CLINIKO_BASE_URL right?`)
  return statusError(s, `${where}: Cliniko answered ${s}`)
}

/**
 * Reads a 200 page in one pass over its bytes: the records as Cliniko wrote them (int64 ids untouched), the total
 * and the next link.
 */
function readEnvelope (res: UpstreamResponse, key: string, where: string): Envelope {
  const body = scanObject(res.body, key) // validates the whole body first
  const records = arrayElements(body, key)
  const invalid = (why: string) => new UpstreamError('invalid_upstream_response', `${where}: ${why}`, res.status)
  const total = memberValue(body, 'total_entries')
  if (total !== undefined && (!Number.isSafeInteger(total) || (total as number) < 0)) throw invalid('"total_entries" is not a count')
  const links = memberValue(body, 'links')
  if (!isObject(links)) throw invalid('the page has no "links" object')
  const next = links.next
  if (next !== undefined && next !== null && typeof next !== 'string') throw invalid('"links.next" is not a URL')
  return { records, total: total === undefined ? null : total as number, next: typeof next === 'string' ? next : null }
}

/** The Cliniko adapter. One instance per process, so every job shares its request budget. */
export function clinikoAdapter (settings: ClinikoSettings, client: UpstreamClient, services: UpstreamServices): UpstreamAdapter {
  const base = settings.baseUrl.replace(/\/+$/, '')
  const baseUrl = new URL(base)
  const basePath = baseUrl.pathname.replace(/\/+$/, '')
  // Cliniko counts requests as they arrive, the budget as they leave: a request that left later but travelled
  // faster (or one delayed by a pause of this process) lands inside a window its predecessor has already left
  // here. Counting each request a little longer than Cliniko's window absorbs such differences: up to 1 s on a
  // minute (1.7% of throughput), a tenth of the window for the short windows of tests.
  const windowMs = settings.rateWindowMs ?? 60_000
  // 5% is held back for clock skew and for whatever else uses the key (Cliniko counts per user, not per app).
  // The key is stored in the database by every replica: a digest, never the key itself.
  const budget: BudgetSpec = {
    upstream: 'cliniko',
    key: `cliniko:${createHash('sha256').update(settings.apiKey).digest('hex')}`,
    windows: [{
      limit: Math.max(1, Math.floor(settings.requestsPerMinute * 0.95)),
      windowMs: windowMs + Math.min(1000, windowMs / 10),
      kind: 'sliding',
      name: 'minute',
      label: "Cliniko's per-minute request budget",
    }],
  }
  const headers = {
    authorization: `Basic ${Buffer.from(`${settings.apiKey}:`).toString('base64')}`,
    'user-agent': settings.userAgent,
    accept: 'application/json',
  }

  /** Only links under the configured API root may receive the key. */
  const sameApi = (link: string, where: string): URL => {
    let url: URL
    try {
      url = new URL(link)
    } catch {
      throw new UpstreamError('invalid_upstream_response', `${where}: "links.next" is not a URL`)
    }
    if (url.origin !== baseUrl.origin || !(url.pathname === basePath || url.pathname.startsWith(`${basePath}/`))) {
      throw new UpstreamError('invalid_upstream_response', `${where}: "links.next" leaves the configured CLINIKO_BASE_URL; not following it with the API key`)
    }
    return url
  }

  return {
    async run (ctx: JobContext): Promise<void> {
      ctx.signal.throwIfAborted()
      const { resource, params } = jobParams('cliniko', clinikoParams, ctx.resource, ctx.params)
      const { key } = CLINIKO_LISTS[resource]
      const perPage = params.per_page ?? DEFAULT_PER_PAGE
      const guard = new PaginationGuard('cliniko')

      const resumed = readCheckpoint(ctx.checkpoint)
      let page = resumed?.page ?? 0
      let total = resumed?.total ?? null
      let url: URL | null
      if (resumed === null) {
        url = firstPageUrl(base, resource, params)
      } else {
        url = resumed.next === null ? null : sameApi(resumed.next, `Cliniko ${resource} (resumed)`)
        ctx.log.debug({ page, done: url === null }, 'cliniko job resumes from its checkpoint')
      }

      while (url !== null) {
        const where = `Cliniko ${url.pathname} page ${page + 1}`
        guard.follow(pageIdentity(url))
        const res = await client.request({
          method: 'GET',
          url,
          headers,
          signal: ctx.signal,
          upstream: 'cliniko',
          // Only page 1 is built here; every later one is a link Cliniko sent (already held to the API root above).
          suppliedBy: page === 0 && resumed === null ? undefined : { baseUrl: base },
          timeoutMs: settings.requestTimeoutMs,
          budget: { store: services.budgets, spec: budget, taker: budgetTaker(ctx) },
        })
        if (res.status !== 200) throw failure(res, where)
        const envelope = readEnvelope(res, key, where)
        guard.page(envelope.records)
        // A short page is not the end: only a missing next link is.
        const next = envelope.next === null ? null : sameApi(envelope.next, where)
        page++
        total = envelope.total ?? total
        // total_entries is an estimate while the list changes under us; the next link is the truth.
        const pagesTotal = next === null ? page : total === null ? null : Math.max(page + 1, Math.ceil(total / perPage))
        const checkpoint: ClinikoCheckpoint = { next: next?.toString() ?? null, page, total }
        const percent = pagesTotal === null ? null : Math.round(1000 * page / pagesTotal) / 10
        await ctx.savePage(page, envelope.records, checkpoint, { pagesDone: page, pagesTotal, percent })
        ctx.log.debug({ page, records: envelope.records.length, pagesTotal }, 'cliniko page saved')
        url = next
      }
    },
  }
}
