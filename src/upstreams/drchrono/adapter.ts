/**
 * Runs a DrChrono bulk-list job: a few pages at a time, each its own POST + poll. Before the list's size is known,
 * a few pages are POSTed together (their lists generate meanwhile) but only page 1 is polled; once a page has told
 * the size, pages past the end are abandoned and the rest follow. Every Complete page is saved with a checkpoint
 * naming the pages done, so a resumed job fetches only the rest.
 */
import type { UpstreamClient } from '../http.js'
import { budgetTaker, type UpstreamServices } from '../types.js'
import { UpstreamError } from '../../domain/errors.js'
import type { JobContext, UpstreamAdapter } from '../../contract/adapter.js'
import { pageBytes } from '../../contract/records.js'
import { DrchronoAuth, type DrchronoCredentials } from './auth.js'
import { fetchListPage, type PageOutcome, type PollOptions } from './bulk-list.js'
import { GenerationPace } from './pace.js'
import { PageLedger, PageQueue, readCheckpoint } from './pages.js'
import { drchronoParams } from './params.js'
import { ByteBudget } from '../response-limits.js'
import { jobParams } from '../job-params.js'

export { PageQueue, type DrchronoCheckpoint, type ListChange } from './pages.js'

/** Where and how the adapter talks to DrChrono. */
export interface DrchronoSettings extends DrchronoCredentials, Partial<PollOptions> {
  /** Pages fetched at the same time. Default 4. */
  pageConcurrency?: number
  /**
   * Pages POSTed before the list's size is known (page 1 included; at most `pageConcurrency` at a time).
   * 1 asks page 1 alone first; more saves one generation time on lists of two pages or more, and costs one POST
   * for each page that turns out to lie past the end. Default: `pageConcurrency`.
   */
  speculativePages?: number
  /** DrChrono's per-application budget: requests per clock hour (UTC), and the burst ceiling per second. */
  requestsPerHour?: number
  requestsPerSecond?: number
}

const DEFAULT_POLL: PollOptions = { pollInitialMs: 500, pollMaxMs: 10_000, maxPolls: 180, maxRegenerations: 3, maxResubmits: 3 }

/** Why a page was abandoned: an earlier page told the list's size, and this one lies past it. */
const PAST_END = new Error('the page lies past the end of the list')

/** The query every page of the job shares: the validated params as DrChrono reads them. */
function listQuery (resource: string, params: unknown): URLSearchParams {
  const query = new URLSearchParams()
  for (const [key, value] of Object.entries(jobParams('drchrono', drchronoParams, resource, params).params)) {
    if (value !== undefined) query.set(key, String(value)) // booleans as true/false, as DRF reads them
  }
  return query
}

/** The DrChrono adapter. One instance per gateway: it keeps refreshed tokens for later jobs. */
export function drchronoAdapter (settings: DrchronoSettings, client: UpstreamClient, services: UpstreamServices): UpstreamAdapter {
  const auth = new DrchronoAuth(settings, client, services)
  const poll: PollOptions = {
    pollInitialMs: settings.pollInitialMs ?? DEFAULT_POLL.pollInitialMs,
    pollMaxMs: settings.pollMaxMs ?? DEFAULT_POLL.pollMaxMs,
    maxPolls: settings.maxPolls ?? DEFAULT_POLL.maxPolls,
    maxRegenerations: settings.maxRegenerations ?? DEFAULT_POLL.maxRegenerations,
    maxResubmits: settings.maxResubmits ?? DEFAULT_POLL.maxResubmits,
  }
  const concurrency = Math.max(1, settings.pageConcurrency ?? 4)
  const speculative = Math.max(1, settings.speculativePages ?? concurrency)
  const base = `${settings.baseUrl.replace(/\/+$/, '')}/`

  return {
    async run (ctx: JobContext): Promise<void> {
      ctx.signal.throwIfAborted()
      const query = listQuery(ctx.resource, ctx.params)
      const listUrl = new URL(`api/${ctx.resource}_list`, base).toString()
      const ledger = new PageLedger(ctx, readCheckpoint(ctx.checkpoint))
      const queue = new PageQueue(ledger, speculative)
      const pace = new GenerationPace(poll)
      const taker = budgetTaker(ctx)
      // One failed page stops the others at once; the job's own signal stops them all.
      const stop = new AbortController()
      const jobSignal = AbortSignal.any([ctx.signal, stop.signal])
      /** Pages in flight, each with its own controller so that one found past the end can be dropped alone. */
      const inFlight = new Map<number, AbortController>()
      // UPSTREAM_MAX_BYTES_IN_FLIGHT: a page being fetched counts as the largest answer it may bring, a page
      // waiting to be saved as what it holds. Each page may bring its share of the job's bytes (never more than
      // DrChrono's own answer limit), so that `concurrency` pages fit at once: the bound never costs concurrency,
      // and a page larger than its share fails as too large rather than holding memory the job does not have.
      const bytes = new ByteBudget(client.limits.maxBytesInFlight)
      const pageReserve = Math.min(client.limits.responseBytes('drchrono'), Math.floor(client.limits.maxBytesInFlight / concurrency))
      /** Pages read, whose reservation became what they hold; the others hand it back whole when they end. */
      const read = new Set<number>()
      let failure: { error: unknown } | undefined
      let finished!: () => void
      const done = new Promise<void>(resolve => { finished = resolve })
      const fail = (error: unknown): void => {
        failure ??= { error }
        stop.abort(error)
      }

      const sized = (by: number): void => {
        const pages = ledger.pages ?? Infinity
        for (const [page, own] of inFlight) if (page > pages && page !== by) own.abort(PAST_END)
      }

      const settle = async (page: number, outcome: PageOutcome): Promise<void> => {
        if (outcome.kind === 'held') return queue.hold(page, outcome.regenerations)
        if (outcome.kind === 'past-end') return
        // A page is polled only once it is known to exist, and accept() fails on a page total that moved, so
        // `page` is never past the end of the list `p` describes.
        const p = outcome.page
        const learned = ledger.accept(p)
        if (learned.sized) sized(page)
        if (learned.change !== undefined) {
          ctx.log.warn(learned.change, 'drchrono list count changed while the job read it')
          await ctx.setUpstreamInfo({ listChanged: learned.change })
        }
        // The next page goes out while this one is saved: generation and saving overlap, as far as the pages
        // waiting to be saved leave room in the job's bytes in flight (and no more wait than pages are fetched).
        const held = pageBytes(p.records)
        read.add(page)
        bytes.release(pageReserve - held)
        ledger.save(p).then(() => { bytes.release(held); pump() }, fail)
      }

      const start = (page: number, regenerations: number): void => {
        const own = new AbortController()
        inFlight.set(page, own)
        const signal = AbortSignal.any([jobSignal, own.signal])
        const target = {
          listUrl,
          query,
          page,
          signal,
          log: ctx.log,
          pace,
          regenerations,
          taker,
          maxResponseBytes: pageReserve,
          lastPage: () => ledger.pages,
          untilSized: (s: AbortSignal) => ledger.untilSized(s),
        }
        fetchListPage(auth, target, poll)
          .then(outcome => settle(page, outcome))
          .catch((error: unknown) => {
            // Abandoned past the end: whatever it was doing when it was stopped does not matter.
            if (own.signal.aborted && (error === PAST_END || !jobSignal.aborted)) return
            fail(error)
          })
          .finally(() => {
            inFlight.delete(page)
            if (!read.delete(page)) bytes.release(pageReserve)
            pump()
          })
      }

      function pump (): void {
        while (failure === undefined && inFlight.size < concurrency && ledger.backlog <= concurrency) {
          if (!bytes.tryTake(pageReserve)) break
          const next = queue.next()
          if (next === undefined) { bytes.release(pageReserve); break }
          start(next.page, next.regenerations)
        }
        if (inFlight.size > 0) return
        // Page 1 is always asked while the size is unknown, and it either tells the size or fails the job.
        if (failure === undefined && ledger.pages === null) fail(new UpstreamError('internal_error', 'no DrChrono page told the list\'s size'))
        if (failure !== undefined || queue.exhausted) finished()
      }

      pump()
      await done
      await ledger.saved().catch(fail)
      if (failure !== undefined) throw failure.error
      ctx.log.debug({ pagesTotal: ledger.pages, records: ledger.count }, 'drchrono list read')
    },
    drain: () => auth.settled(),
  }
}
