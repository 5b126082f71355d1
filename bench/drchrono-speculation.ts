/**
 * What asking pages before a DrChrono list's size is known costs and gains: requests and job time for lists of a
 * few pages and for the 40-page list of target 1, with speculation on (as many pages as the concurrency) and off
 * (page 1 alone), under each way DrChrono may answer a page past the end. The adapter runs against the simulator
 * directly (no database): run it with `npx tsx bench/drchrono-speculation.ts` (about two minutes).
 *
 * Settings (environment): SPEC_PAGES (comma-separated list sizes, default 1,2,3,40), SPEC_MODES (past-end
 * behaviours, default all four; the 40-page list runs under poll-404 only, since it never reaches past its end).
 */
import { pino } from 'pino'
import { drchronoAdapter } from '../src/upstreams/drchrono/adapter.js'
import { PAST_END_MODES, SANDBOX_CREDENTIALS, startDrchronoSimulator, type PastEndMode } from '../src/upstreams/drchrono/simulator/index.js'
import { UpstreamClient } from '../src/upstreams/http.js'
import type { JobContext } from '../src/contract/adapter.js'
import { memoryServices } from '../src/upstreams/memory-services.js'

const PAGE_SIZE = 1000
const GENERATION_MS = 1000
const CONCURRENCY = 4
const RESOURCE = 'line_items'

const sizes = (process.env.SPEC_PAGES ?? '1,2,3,40').split(',').map(Number)
const modes = (process.env.SPEC_MODES?.split(',') ?? PAST_END_MODES) as PastEndMode[]

/** One job; requests are counted by the client (every answered attempt), so any adapter version can be measured. */
async function job (pages: number, mode: PastEndMode, speculativePages: number): Promise<{ requests: number, seconds: number, records: number }> {
  const sim = await startDrchronoSimulator({
    seed: 7, inProgressPolls: 0, generationMs: GENERATION_MS, recordCount: { [RESOURCE]: pages * PAGE_SIZE }, pastEnd: mode,
  })
  let requests = 0
  const client = new UpstreamClient({ onEvent: e => { if (e.type !== 'retry') requests++ } })
  try {
    const adapter = drchronoAdapter({ baseUrl: sim.url, ...SANDBOX_CREDENTIALS, pageConcurrency: CONCURRENCY, speculativePages }, client, memoryServices())
    let records = 0
    const base = {
      jobId: 'bench',
      clientId: 'bench',
      resource: RESOURCE,
      params: { page_size: PAGE_SIZE },
      payload: null,
      checkpoint: null,
      signal: new AbortController().signal,
      log: pino({ level: 'silent' }),
      async savePage (_page: number, rows: readonly unknown[]) { records += rows.length },
      async saveCheckpoint () {},
      async setUpstreamInfo () {},
      async park (): Promise<never> { throw new Error('no webhooks here') },
      reportWait () {},
    }
    const started = performance.now()
    await adapter.run(base as unknown as JobContext)
    return { requests, seconds: (performance.now() - started) / 1000, records }
  } finally {
    await client.close()
    await sim.close()
  }
}

process.stdout.write('pages  past-end        speculative  requests  req/page  seconds  ideal s\n')
for (const pages of sizes) {
  for (const mode of pages >= CONCURRENCY ? ['poll-404' as const] : modes) {
    for (const speculative of [CONCURRENCY, 1]) {
      const r = await job(pages, mode, speculative)
      if (r.records !== pages * PAGE_SIZE) throw new Error(`stored ${r.records} records, expected ${pages * PAGE_SIZE}`)
      const ideal = Math.ceil(pages / CONCURRENCY) * GENERATION_MS / 1000
      process.stdout.write(`${String(pages).padStart(5)}  ${mode.padEnd(14)}  ${String(speculative).padStart(11)}  ${String(r.requests).padStart(8)}  ${(r.requests / pages).toFixed(2).padStart(8)}  ${r.seconds.toFixed(2).padStart(7)}  ${ideal.toFixed(1).padStart(7)}\n`)
    }
  }
}
