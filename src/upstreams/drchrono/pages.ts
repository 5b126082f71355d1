/**
 * The pages of one DrChrono job: which are saved (the checkpoint), which to ask for next, and the list's size
 * once a page has told it.
 */
import { untilAborted } from '../../lib/abort.js'
import { UpstreamError } from '../../domain/errors.js'
import type { JobContext } from '../../contract/adapter.js'
import type { ListPage } from './bulk-list.js'
import { MAX_PAGE } from './params.js'

/** What a job saves after each page; handed back on resume. */
export interface DrchronoCheckpoint {
  /** Pages in the list, once page 1 (or any page) has told. */
  pages: number | null
  /** Records in the list as the first page read reported them. */
  count: number | null
  /** Pages saved so far, ascending. */
  done: number[]
}

/** A checkpoint from an earlier attempt, with anything that does not fit dropped. */
export function readCheckpoint (raw: unknown): DrchronoCheckpoint {
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
 * The list's record count moved while the job read it (records were added or removed): the records stored may
 * miss or repeat some around page boundaries. Shown on the job as `upstreamInfo.listChanged`.
 */
export interface ListChange {
  /** The count the first page read reported (on resume: the first attempt's). */
  firstCount: number
  /** The count a later page reported. */
  laterCount: number
  /** The page that reported `laterCount`. */
  page: number
}

/** What a page taught the ledger. */
export interface Accepted {
  /** This page told the list's size for the first time. */
  sized: boolean
  /** Set when this page reports a count not seen before. */
  change?: ListChange
}

/**
 * Keeps the checkpoint and saves pages one at a time: pages finish concurrently, but each save's checkpoint
 * must include every page saved before it and no page that is not. After a failed save nothing more is saved,
 * so a checkpoint can never claim a page whose records did not land.
 */
export class PageLedger {
  readonly #ctx: JobContext
  readonly #done: Set<number>
  pages: number | null
  count: number | null
  #tail: Promise<void> = Promise.resolve()
  #lastCount: number | null
  #sized: () => void = () => {}
  readonly #whenSized = new Promise<void>(resolve => { this.#sized = resolve })
  /** Pages handed to save() and not saved yet. */
  backlog = 0

  constructor (ctx: JobContext, cp: DrchronoCheckpoint) {
    this.#ctx = ctx
    this.pages = cp.pages
    this.count = cp.count
    this.#lastCount = cp.count
    this.#done = new Set(cp.done)
    if (this.pages !== null) this.#sized()
  }

  isDone (page: number): boolean {
    return this.#done.has(page)
  }

  /** Settles once every page handed to save() is saved (or a save failed). */
  saved (): Promise<void> {
    return this.#tail
  }

  /** Resolves once the list's size is known; rejects with the signal's reason if it aborts first. */
  untilSized (signal: AbortSignal): Promise<void> {
    return this.pages !== null ? Promise.resolve() : untilAborted(this.#whenSized, signal)
  }

  /**
   * Learns the totals from the first page read. A later page reporting another page total means the list
   * changed in a way that moves pages: the job fails rather than store a mix of two lists. Another count with
   * the same page total is reported (see {@link ListChange}) and the job goes on.
   */
  accept (p: ListPage): Accepted {
    if (p.pages > MAX_PAGE) {
      throw new UpstreamError('upstream_rejected',
        `DrChrono's list has ${p.pages} pages but serves at most ${MAX_PAGE}: raise page_size or narrow the filters`)
    }
    if (this.pages === null) {
      this.pages = p.pages
      this.count ??= p.count
      this.#lastCount ??= p.count
      this.#sized()
      return { sized: true, ...this.#countChange(p) }
    }
    if (p.pages !== this.pages) {
      throw new UpstreamError('invalid_upstream_response',
        `DrChrono's list changed while it was read: page ${p.page} reports ${p.pages} pages, earlier pages reported ${this.pages}; submit the job again`)
    }
    return { sized: false, ...this.#countChange(p) }
  }

  #countChange (p: ListPage): { change?: ListChange } {
    if (this.count === null || p.count === this.#lastCount) return {}
    this.#lastCount = p.count
    return { change: { firstCount: this.count, laterCount: p.count, page: p.page } }
  }

  save (p: ListPage): Promise<void> {
    this.backlog++
    this.#tail = this.#tail.then(async () => {
      this.backlog--
      this.#done.add(p.page)
      const checkpoint: DrchronoCheckpoint = { pages: this.pages, count: this.count, done: [...this.#done].sort((a, b) => a - b) }
      try {
        await this.#ctx.savePage(p.page, p.records, checkpoint, { pagesDone: this.#done.size, pagesTotal: this.pages })
      } finally {
        // Saved (its bytes copied), or failed for good: nothing reads the records again.
        p.release()
      }
      this.#ctx.log.debug({ page: p.page, records: p.records.length, pagesDone: this.#done.size, pagesTotal: this.pages }, 'drchrono page saved')
    })
    return this.#tail
  }
}

/**
 * Which page to ask for next. Until the list's size is known, pages 1..`speculative` may go out (page 1 always
 * exists; a later one may be past the end). Once a page has told the size, the remaining pages follow in order,
 * and a page refused before the size was known comes back if it exists, with its failed generations.
 */
export class PageQueue {
  #cursor = 1
  readonly #held = new Map<number, number>()

  constructor (private readonly ledger: Pick<PageLedger, 'pages' | 'isDone'>, private readonly speculative: number) {}

  next (): { page: number, regenerations: number } | undefined {
    const pages = this.ledger.pages
    if (pages !== null) {
      for (const [page, regenerations] of this.#held) {
        this.#held.delete(page)
        if (page <= pages) return { page, regenerations }
      }
    }
    const limit = pages ?? this.speculative
    while (this.#cursor <= limit && this.ledger.isDone(this.#cursor)) this.#cursor++
    if (this.#cursor > limit) return undefined
    return { page: this.#cursor++, regenerations: 0 }
  }

  /** `page` was refused before the size was known: held until it is. */
  hold (page: number, regenerations: number): void {
    this.#held.set(page, regenerations)
  }

  /** True once the size is known and next() has nothing more to give. */
  get exhausted (): boolean {
    const pages = this.ledger.pages
    if (pages === null) return false
    for (const page of this.#held.keys()) if (page <= pages) return false
    let cursor = this.#cursor
    while (cursor <= pages && this.ledger.isDone(cursor)) cursor++
    return cursor > pages
  }
}
