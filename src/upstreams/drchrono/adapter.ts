/**
 * Runs a DrChrono bulk-list job: page 1 first (it tells how many pages there are), then the other pages a few
 * at a time, each its own POST + poll. Every Complete page is saved with a checkpoint naming the pages done,
 * so a resumed job fetches only the rest.
 */
import type { UpstreamClient } from '../http.js'
import { UpstreamError, type JobContext, type UpstreamAdapter } from '../types.js'
import { DrchronoAuth, type DrchronoCredentials } from './auth.js'
import { fetchListPage, type ListPage, type PollOptions } from './bulk-list.js'
import { MAX_PAGE, drchronoParams, isDrchronoResource } from './params.js'

/** Where and how the adapter talks to DrChrono. */
export interface DrchronoSettings extends DrchronoCredentials, Partial<PollOptions> {
  /** Pages fetched at the same time after page 1. Default 4. */
  pageConcurrency?: number
}

/** What a job saves after each page; handed back on resume. */
export interface DrchronoCheckpoint {
  /** Pages in the list, once page 1 (or any page) has told. */
  pages: number | null
  /** Records in the list as page 1 reported it. */
  count: number | null
  /** Pages saved so far, ascending. */
  done: number[]
}

const DEFAULT_POLL: PollOptions = { pollInitialMs: 500, pollMaxMs: 10_000, maxPolls: 180, maxRegenerations: 3, maxResubmits: 3 }

function readCheckpoint (raw: unknown): DrchronoCheckpoint {
  const cp = raw as Partial<DrchronoCheckpoint> | null
  const pages = Number.isSafeInteger(cp?.pages) && (cp?.pages as number) > 0 ? cp?.pages as number : null
  return {
    pages,
    count: Number.isSafeInteger(cp?.count) ? cp?.count as number : null,
    // Done pages only mean something once the page total is known.
    done: pages === null || !Array.isArray(cp?.done) ? [] : cp.done.filter(p => Number.isSafeInteger(p) && p >= 1 && p <= pages),
  }
}

/**
 * Keeps the checkpoint and saves pages one at a time: pages finish concurrently, but each save's checkpoint
 * must include every page saved before it and no page that is not. After a failed save nothing more is saved,
 * so a checkpoint can never claim a page whose records did not land.
 */
class PageLedger {
  readonly #ctx: JobContext
  readonly #done: Set<number>
  pages: number | null
  count: number | null
  #tail: Promise<void> = Promise.resolve()

  constructor (ctx: JobContext, cp: DrchronoCheckpoint) {
    this.#ctx = ctx
    this.pages = cp.pages
    this.count = cp.count
    this.#done = new Set(cp.done)
  }

  isDone (page: number): boolean {
    return this.#done.has(page)
  }

  /** Learns the totals from the first page fetched; a later page that disagrees means the list moved. */
  accept (p: ListPage): void {
    if (p.pages > MAX_PAGE) {
      throw new UpstreamError('upstream_rejected',
        `DrChrono's list has ${p.pages} pages but serves at most ${MAX_PAGE}: raise page_size or narrow the filters`)
    }
    if (this.pages === null) {
      this.pages = p.pages
      this.count = p.count
    } else if (p.pages !== this.pages) {
      throw new UpstreamError('invalid_upstream_response',
        `DrChrono's list changed while it was read: page ${p.page} reports ${p.pages} pages, earlier pages reported ${this.pages}; submit the job again`)
    }
  }

  save (p: ListPage): Promise<void> {
    this.#tail = this.#tail.then(async () => {
      this.#done.add(p.page)
      const checkpoint: DrchronoCheckpoint = { pages: this.pages, count: this.count, done: [...this.#done].sort((a, b) => a - b) }
      await this.#ctx.savePage(p.page, p.records, checkpoint, { pagesDone: this.#done.size, pagesTotal: this.pages })
      this.#ctx.log.debug({ page: p.page, records: p.records.length, pagesDone: this.#done.size, pagesTotal: this.pages }, 'drchrono page saved')
    })
    return this.#tail
  }
}

/** Runs `work` on each item, at most `limit` at once; the first failure aborts `stop` and is rethrown. */
async function eachAtMost<T> (items: readonly T[], limit: number, stop: AbortController, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  let failure: { error: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T
      try {
        await work(item)
      } catch (error) {
        failure ??= { error }
        stop.abort(error)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failure) throw failure.error
}

/** The query every page of the job shares: the validated params as DrChrono reads them. */
function listQuery (resource: string, params: unknown): URLSearchParams {
  if (!isDrchronoResource(resource)) throw new UpstreamError('internal_error', `drchrono has no resource "${resource}"`)
  const parsed = drchronoParams[resource].safeParse(params ?? {})
  if (!parsed.success) throw new UpstreamError('internal_error', `the job's params are not valid for drchrono ${resource}`)
  const query = new URLSearchParams()
  for (const [key, value] of Object.entries(parsed.data)) {
    if (value !== undefined) query.set(key, String(value)) // booleans as true/false, as DRF reads them
  }
  return query
}

/** The DrChrono adapter. One instance per gateway: it keeps refreshed tokens for later jobs. */
export function drchronoAdapter (settings: DrchronoSettings, client: UpstreamClient): UpstreamAdapter {
  const auth = new DrchronoAuth(settings, client)
  const poll: PollOptions = {
    pollInitialMs: settings.pollInitialMs ?? DEFAULT_POLL.pollInitialMs,
    pollMaxMs: settings.pollMaxMs ?? DEFAULT_POLL.pollMaxMs,
    maxPolls: settings.maxPolls ?? DEFAULT_POLL.maxPolls,
    maxRegenerations: settings.maxRegenerations ?? DEFAULT_POLL.maxRegenerations,
    maxResubmits: settings.maxResubmits ?? DEFAULT_POLL.maxResubmits,
  }
  const concurrency = Math.max(1, settings.pageConcurrency ?? 4)
  const base = `${settings.baseUrl.replace(/\/+$/, '')}/`

  return {
    async run (ctx: JobContext): Promise<void> {
      ctx.signal.throwIfAborted()
      const query = listQuery(ctx.resource, ctx.params)
      const listUrl = new URL(`api/${ctx.resource}_list`, base).toString()
      const ledger = new PageLedger(ctx, readCheckpoint(ctx.checkpoint))
      // One failed page stops its siblings at once; the job's own signal stops them all.
      const stop = new AbortController()
      const signal = AbortSignal.any([ctx.signal, stop.signal])
      const fetchAndSave = async (page: number): Promise<void> => {
        const p = await fetchListPage(auth, { listUrl, query, page, signal, log: ctx.log }, poll)
        ledger.accept(p)
        await ledger.save(p)
      }

      if (ledger.pages === null) await fetchAndSave(1)
      const pages = ledger.pages ?? 1
      const todo = Array.from({ length: pages }, (_, i) => i + 1).filter(p => !ledger.isDone(p))
      ctx.log.debug({ pagesTotal: pages, records: ledger.count, pagesLeft: todo.length }, 'drchrono list size known')
      await eachAtMost(todo, concurrency, stop, fetchAndSave)
    },
  }
}
