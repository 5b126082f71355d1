/**
 * Reads ledger's entries page by page: `GET /entries?offset=&limit=` answers `{"entries":[…],"next_offset":n|null}`.
 * Each page is saved with the next offset, so a resumed job goes on from there.
 */
import type { JobContext, UpstreamAdapter } from '../../../../src/contract/adapter.js'
import { UpstreamError } from '../../../../src/domain/errors.js'
import { isObject } from '../../../../src/lib/values.js'
import type { UpstreamClient } from '../../../../src/upstreams/http.js'
import { jobParams } from '../../../../src/upstreams/job-params.js'
import { arrayElements, memberValue, scanObject } from '../../../../src/upstreams/json-records.js'
import { statusError } from '../../../../src/upstreams/status-codes.js'
import type { LedgerSettings } from './env.js'
import { ledgerParams } from './params.js'

interface LedgerCheckpoint { page: number, offset: number | null }

export function ledgerAdapter (settings: LedgerSettings, client: UpstreamClient): UpstreamAdapter {
  const base = settings.baseUrl.replace(/\/+$/, '')
  return {
    async run (ctx: JobContext): Promise<void> {
      const { params } = jobParams('ledger', ledgerParams, ctx.resource, ctx.params)
      const resumed = isObject(ctx.checkpoint) ? ctx.checkpoint as unknown as LedgerCheckpoint : null
      let page = resumed?.page ?? 0
      let offset = resumed === null ? 0 : resumed.offset
      while (offset !== null) {
        const url = new URL(`${base}/entries`)
        url.searchParams.set('offset', String(offset))
        url.searchParams.set('limit', String(params.limit))
        if (params.since !== undefined) url.searchParams.set('since', params.since)
        const where = `ledger entries page ${page + 1}`
        const res = await client.request({ method: 'GET', url, headers: { 'x-ledger-key': settings.key, accept: 'application/json' }, signal: ctx.signal, upstream: 'ledger' })
        if (res.status !== 200) throw statusError(res.status, `${where}: ledger answered ${res.status}`)
        const body = scanObject(res.body, 'entries')
        const next = memberValue(body, 'next_offset')
        if (next !== null && (!Number.isSafeInteger(next) || (next as number) <= offset)) {
          throw new UpstreamError('invalid_upstream_response', `${where}: "next_offset" is not an offset past this page`, res.status)
        }
        page++
        offset = next as number | null
        await ctx.savePage(page, arrayElements(body, 'entries'), { page, offset } satisfies LedgerCheckpoint, { pagesDone: page, pagesTotal: offset === null ? page : null })
      }
    },
  }
}
