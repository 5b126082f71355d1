/**
 * Runs a DrChrono bulk-list job: a few pages at a time, each its own POST + poll. The first pages go out together
 * before the list's size is known (any Complete page tells it); the rest follow. Every Complete page is saved with
 * a checkpoint naming the pages done, so a resumed job fetches only the rest.
 */
import type { UpstreamClient } from '../http.js'
import { UpstreamError, type JobContext, type UpstreamAdapter } from '../types.js'
import { DrchronoAuth, type DrchronoCredentials } from './auth.js'
import { GenerationPace, fetchListPage, type ListPage, type PollOptions } from './bulk-list.js'
import { MAX_PAGE, drchronoParams, isDrchronoResource } from './params.js'

/** Where and how the adapter talks to DrChrono. */
export interface DrchronoSettings extends DrchronoCredentials, Partial<PollOptions> {
  /** Pages fetched at the same time. Default 4. */
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

  /** Settles once every page handed to save() is saved (or a save failed). */
  saved (): Promise<void> {
    return this.#tail
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

  /** Pages handed to save() and not saved yet. */
  backlog = 0

  save (p: ListPage): Promise<void> {
    this.backlog++
    this.#tail = this.#tail.then(async () => {
      this.backlog--
      this.#done.add(p.page)
      const checkpoint: DrchronoCheckpoint = { pages: this.pages, count: this.count, done: [...this.#done].sort((a, b) => a - b) }
      await this.#ctx.savePage(p.page, p.records, checkpoint, { pagesDone: this.#done.size, pagesTotal: this.pages })
      this.#ctx.log.debug({ page: p.page, records: p.records.length, pagesDone: this.#done.size, pagesTotal: this.pages }, 'drchrono page saved')
    })
    return this.#tail
  }
}

/**
 * Which page a fetch slot takes next. Until the list's size is known, pages 1..`speculative` may go out (page 1
 * always exists; a later one may be past the end, which DrChrono refuses with a 404). Once a page has told the
 * size, the remaining pages follow in order, and a page refused earlier that does exist is asked for again.
 */
export class PageQueue {
  #cursor = 1
  readonly #refused: number[] = []

  constructor (private readonly ledger: Pick<PageLedger, 'pages' | 'isDone'>, private readonly speculative: number) {}

  next (): { page: number, mayBePastEnd: boolean } | undefined {
    const pages = this.ledger.pages
    if (pages !== null) {
      const again = this.#refused.findIndex(p => p <= pages)
      if (again !== -1) return { page: this.#refused.splice(again, 1)[0] as number, mayBePastEnd: false }
    }
    const limit = pages ?? this.speculative
    while (this.#cursor <= limit && this.ledger.isDone(this.#cursor)) this.#cursor++
    if (this.#cursor > limit) return undefined
    const page = this.#cursor++
    return { page, mayBePastEnd: pages === null && page > 1 }
  }

  /** DrChrono refused `page` as past the end before the size was known. */
  refused (page: number): void {
    this.#refused.push(page)
  }
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
      const queue = new PageQueue(ledger, concurrency)
      const pace = new GenerationPace()
      // One failed page stops its siblings at once; the job's own signal stops them all.
      const stop = new AbortController()
      const signal = AbortSignal.any([ctx.signal, stop.signal])
      let failure: { error: unknown } | undefined
      const fail = (error: unknown): void => {
        failure ??= { error }
        stop.abort(error)
      }

      const fetchPage = async (page: number, mayBePastEnd: boolean): Promise<void> => {
        const p = await fetchListPage(auth, { listUrl, query, page, signal, log: ctx.log, pace, mayBePastEnd }, poll)
        if (p === null) return queue.refused(page)
        ledger.accept(p)
        if (page > p.pages) {
          // Asked before the size was known, and answered with an empty page rather than a 404.
          if (p.records.length > 0) throw new UpstreamError('invalid_upstream_response', `DrChrono answered page ${page} of a ${p.pages}-page list with records`)
          return
        }
        // The slot moves on to its next page while this one is saved: generation and saving overlap. Only when
        // more pages wait to be saved than there are slots does it wait, so memory stays bounded.
        const saved = ledger.save(p)
        saved.catch(fail)
        if (ledger.backlog > concurrency) await saved
      }
      const slot = async (): Promise<void> => {
        for (let next = queue.next(); next !== undefined && failure === undefined; next = queue.next()) {
          try {
            await fetchPage(next.page, next.mayBePastEnd)
          } catch (error) {
            fail(error)
          }
        }
      }

      await Promise.all(Array.from({ length: concurrency }, slot))
      await ledger.saved().catch(fail)
      if (failure !== undefined) throw failure.error
      ctx.log.debug({ pagesTotal: ledger.pages, records: ledger.count }, 'drchrono list read')
    },
  }
}
