/**
 * The baseline for target 1: DrChrono's own recipe for a bulk list, as a small client would follow it. POST a
 * page, poll its uuid every second until it is Complete, read the records, then the next page.
 */
import { setTimeout as sleep } from 'node:timers/promises'

export interface VendorLoopResult { seconds: number, pages: number, records: number, polls: number }

async function json (res: Response, what: string): Promise<Record<string, unknown>> {
  const text = await res.text()
  if (!res.ok) throw new Error(`${what} answered ${res.status}: ${text.slice(0, 300)}`)
  return JSON.parse(text) as Record<string, unknown>
}

export async function drchronoVendorLoop (opts: {
  baseUrl: string,
  token: string,
  resource: string,
  pageSize: number,
  pollMs: number,
}): Promise<VendorLoopResult> {
  const list = `${opts.baseUrl}/api/${opts.resource}_list`
  const headers = { authorization: `Bearer ${opts.token}` }
  const started = performance.now()
  let records = 0
  let polls = 0
  let pages = 1
  for (let page = 1; page <= pages; page++) {
    const posted = await json(await fetch(`${list}?page=${page}&page_size=${opts.pageSize}`, {
      method: 'POST', headers: { ...headers, 'content-type': 'application/json' },
    }), `POST page ${page}`)
    const uuid = String(posted.uuid)
    for (;;) {
      await sleep(opts.pollMs)
      polls++
      const body = await json(await fetch(`${list}?uuid=${encodeURIComponent(uuid)}`, { headers }), `GET page ${page}`)
      if (body.status !== 'Complete') continue
      records += (body.results as unknown[]).length
      pages = (body.pagination as { pages: number }).pages
      break
    }
  }
  return { seconds: (performance.now() - started) / 1000, pages, records, polls }
}
