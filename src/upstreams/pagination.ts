/**
 * Guards every paginated read against the loops extraction tools most often fall into: a `next` link (or page
 * token) that was already followed, or a page that repeats the previous page's records. Either fails the job
 * with `upstream_pagination_loop` instead of reading forever or storing the same records twice.
 */
import { createHash } from 'node:crypto'
import { UpstreamError } from '../domain/errors.js'
import type { PageRecords } from '../contract/adapter.js'
import { recordAt } from '../contract/records.js'

export class PaginationGuard {
  readonly #followed = new Set<string>()
  #previousPage: string | null = null

  constructor (private readonly upstream: string) {}

  /** Call before following a next link or page token. */
  follow (next: string): void {
    if (this.#followed.has(next)) {
      throw new UpstreamError('upstream_pagination_loop', `${this.upstream} sent a next page that was already read; stopped to avoid a loop`)
    }
    this.#followed.add(next)
  }

  /** Call with each page's records (their JSON text or its bytes), in order. An empty page is never a repeat. */
  page (records: PageRecords): void {
    if (records.length === 0) return
    const digest = createHash('sha256')
    for (let i = 0; i < records.length; i++) digest.update(recordAt(records, i)).update('\n')
    const hash = digest.digest('hex')
    if (hash === this.#previousPage) {
      throw new UpstreamError('upstream_pagination_loop', `${this.upstream} sent the same page of records twice in a row; stopped to avoid a loop`)
    }
    this.#previousPage = hash
  }
}
