/**
 * A `changes` job: the concepts, then the mappings, updated since a time, from OCL's list endpoints.
 * Lists are bare JSON arrays paged through headers (`num_found`, `num_returned`, `next`, …); each upstream
 * page becomes one stored page, numbered on across both lists.
 *
 * `next` is read for its page number only and the request is rebuilt from our own URL: the link's scheme and
 * host may be OCL's internal ones behind a proxy, and the token must never follow a link to another host.
 * Our `limit` (1000, OCL's largest: above it, or at 0, OCL silently serves 25) is therefore always the one sent.
 */
import { PaginationGuard } from '../pagination.js'
import { splitArray } from '../json-records.js'
import type { JobContext } from '../../contract/adapter.js'
import { invalidResponse, oclError, type OclApi } from './api.js'
import type { OclChangesParams } from './params.js'

/** Records per upstream request: OCL's largest page. */
export const CHANGES_PAGE_SIZE = 1000

type List = 'concepts' | 'mappings'
const LISTS: readonly List[] = ['concepts', 'mappings']
const TYPES: Record<List, string> = { concepts: 'Concept', mappings: 'Mapping' }

/** What a changes job saves with each page; handed back on resume. */
export interface OclChangesCheckpoint {
  kind: 'changes'
  /** The list being read, or 'done'. */
  list: List | 'done'
  /** The upstream page of `list` to read next (1-based). */
  page: number
  /** Records read from `list` so far. */
  read: number
  /** Pages stored so far, across both lists. */
  pagesSaved: number
  /** `num_found` of each list, once known: they drive progress. */
  found: Record<List, number | null>
}

const count = (v: unknown): number | null => (typeof v === 'string' && /^\d{1,15}$/.test(v.trim()) ? Number(v) : null)
const positive = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1
const known = (v: unknown): number | null => (Number.isSafeInteger(v) && (v as number) >= 0 ? v as number : null)

export function readChangesCheckpoint (raw: unknown): OclChangesCheckpoint | null {
  const cp = raw as Partial<OclChangesCheckpoint> | null
  if (cp?.kind !== 'changes' || !(cp.list === 'done' || LISTS.includes(cp.list as List))) return null
  if (!positive(cp.page) || known(cp.read) === null || known(cp.pagesSaved) === null) return null
  const found = { concepts: known(cp.found?.concepts), mappings: known(cp.found?.mappings) }
  return { kind: 'changes', list: cp.list as List | 'done', page: cp.page, read: cp.read as number, pagesSaved: cp.pagesSaved as number, found }
}

/** One page of a list as OCL served it. */
interface ListPage { records: string[], found: number | null, nextPage: number | null }

class ChangesReader {
  readonly #guard = new PaginationGuard('ocl')

  constructor (private readonly ctx: JobContext, private readonly api: OclApi, private readonly params: OclChangesParams) {}

  /** The URL of page `page` of a list, with our filters and limit. */
  url (list: List, page: number, limit = CHANGES_PAGE_SIZE): URL {
    const url = this.api.sourceUrl(this.params, list)
    url.searchParams.set('updatedSince', this.params.updatedSince)
    url.searchParams.set('includeRetired', String(this.params.includeRetired))
    url.searchParams.set('page', String(page))
    url.searchParams.set('limit', String(limit))
    return url
  }

  async fetch (list: List, page: number): Promise<ListPage> {
    const url = this.url(list, page)
    this.#guard.follow(url.toString())
    const what = `OCL ${list} of ${this.params.owner}/${this.params.source} page ${page}`
    const res = await this.api.get(url, this.ctx.signal)
    if (res.status !== 200) throw oclError(res, what)
    const records = splitArray(res.text())
    for (const record of records) {
      // Records must say what they are; adding the field would mean re-serialising OCL's text.
      if ((JSON.parse(record) as { type?: unknown } | null)?.type !== TYPES[list]) {
        throw invalidResponse(what, `a record does not have "type": "${TYPES[list]}"`, res.status)
      }
    }
    this.#guard.page(records)
    const returned = count(res.headers.num_returned)
    if (returned !== null && returned !== records.length) {
      throw invalidResponse(what, `num_returned says ${returned} but the body holds ${records.length} records`, res.status)
    }
    return { records, found: count(res.headers.num_found), nextPage: this.#nextPage(res.headers.next, what, res.status) }
  }

  /** `num_found` of a list, from a one-record page: only progress depends on it. */
  async total (list: List): Promise<number | null> {
    const res = await this.api.get(this.url(list, 1, 1), this.ctx.signal)
    if (res.status !== 200) throw oclError(res, `OCL ${list} of ${this.params.owner}/${this.params.source}`)
    return count(res.headers.num_found)
  }

  #nextPage (next: string | undefined, what: string, status: number): number | null {
    if (next === undefined || next.trim() === '' || next === 'None') return null
    let page: string | null = null
    try {
      page = new URL(next, 'http://relative.invalid/').searchParams.get('page')
    } catch {
      page = null
    }
    const n = page === null ? null : count(page)
    if (n === null || n < 1) throw invalidResponse(what, 'the "next" header is not a link to a numbered page', status)
    return n
  }
}

/** Runs a changes job; `params` are validated. */
export async function runChanges (ctx: JobContext, api: OclApi, params: OclChangesParams): Promise<void> {
  const reader = new ChangesReader(ctx, api, params)
  const cp: OclChangesCheckpoint = readChangesCheckpoint(ctx.checkpoint) ??
    { kind: 'changes', list: 'concepts', page: 1, read: 0, pagesSaved: 0, found: { concepts: null, mappings: null } }
  const pagesTotal = (): number | null => {
    const { concepts, mappings } = cp.found
    if (concepts === null || mappings === null) return null
    return Math.max(cp.pagesSaved, Math.ceil(concepts / CHANGES_PAGE_SIZE) + Math.ceil(mappings / CHANGES_PAGE_SIZE))
  }

  let probed = false
  for (let index = LISTS.indexOf(cp.list as List); index >= 0 && index < LISTS.length; index++) {
    const list = LISTS[index] as List
    for (;;) {
      const page = await reader.fetch(list, cp.page)
      if (cp.page === 1 || cp.found[list] === null) cp.found[list] = page.found
      if (!probed) {
        // Both totals before the first save, so that progress never goes back.
        probed = true
        for (const other of LISTS) if (other !== list && cp.found[other] === null) cp.found[other] = await reader.total(other)
      }
      cp.read += page.records.length
      const found = cp.found[list]
      // A short page is not the end while OCL links a next one; num_found ends it too, against endless links.
      const ended = page.nextPage === null || page.records.length === 0 || (found !== null && cp.read >= found)
      if (ended) {
        const following = LISTS[index + 1]
        Object.assign(cp, { list: following ?? 'done', page: 1, read: 0 })
      } else {
        cp.page = page.nextPage as number
      }
      if (page.records.length > 0) {
        cp.pagesSaved++
        await ctx.savePage(cp.pagesSaved, page.records, structuredClone(cp), { pagesDone: cp.pagesSaved, pagesTotal: cp.list === 'done' ? cp.pagesSaved : pagesTotal() })
      }
      if (ended) break
    }
  }
  ctx.log.debug({ pages: cp.pagesSaved, found: cp.found }, 'ocl changes read')
}
