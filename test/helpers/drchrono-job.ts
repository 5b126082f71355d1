/**
 * The DrChrono adapter outside the gateway: an in-memory JobContext, an adapter pointed at a simulator, and a
 * hand-written DrChrono for answers the simulator never gives.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { pino } from 'pino'
import { drchronoAdapter, type DrchronoCheckpoint, type DrchronoSettings } from '../../src/upstreams/drchrono/adapter.js'
import type { DrchronoResource } from '../../src/upstreams/drchrono/params.js'
import { SANDBOX_CREDENTIALS, startDrchronoSimulator, type DrchronoSimulatorOptions } from '../../src/upstreams/drchrono/simulator/index.js'
import { UpstreamClient } from '../../src/upstreams/http.js'
import type { JobContext, ProgressUpdate } from '../../src/contract/adapter.js'
import { recordTexts } from './records.js'
import { memoryServices } from '../../src/upstreams/memory-services.js'

interface TestLike { teardown (fn: () => unknown): void }

/**
 * DrChrono's budgets lifted: these tests are about the protocol, with waits of milliseconds, and 8 requests a second
 * would pace them instead (test/e2e/shared-budgets.test.ts is about the budgets).
 */
export const UNMETERED = { requestsPerHour: 1_000_000, requestsPerSecond: 1000 } as const

/** A simulator on a loopback port and an adapter pointed at it, with tiny waits; all closed at the test's end. */
export async function drchronoSetup (t: TestLike, sim: DrchronoSimulatorOptions = {}, settings: Partial<DrchronoSettings> = {}) {
  const simulator = await startDrchronoSimulator({ inProgressPolls: 1, ...sim })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => {
    await client.close()
    await simulator.close()
  })
  const adapter = drchronoAdapter({
    baseUrl: simulator.url, ...SANDBOX_CREDENTIALS, pollInitialMs: 2, pollMaxMs: 10, ...UNMETERED, ...settings,
  }, client, memoryServices())
  return { simulator, state: simulator.state, adapter }
}

/**
 * The engine's side, in memory: pages by number (a page saved twice keeps its first copy), checkpoints in order,
 * and what the adapter told about the job (`upstreamInfo`, merged as the engine merges it).
 */
export function fakeJob (resource: DrchronoResource, params: Record<string, unknown>, options: {
  checkpoint?: DrchronoCheckpoint
  onSave?: (page: number) => void
  /** How long each page's save takes. */
  saveMs?: (page: number) => number
} = {}) {
  const controller = new AbortController()
  const pages = new Map<number, readonly string[]>()
  const checkpoints: DrchronoCheckpoint[] = []
  const unsafe: number[] = []
  const progress: Array<ProgressUpdate | undefined> = []
  const upstreamInfo: Record<string, unknown> = {}
  const ctx: JobContext = {
    jobId: 'job-1',
    clientId: 'client-1',
    resource,
    params,
    payload: null,
    checkpoint: options.checkpoint ?? null,
    signal: controller.signal,
    log: pino({ level: 'silent' }),
    async savePage (page, records, checkpoint, update) {
      controller.signal.throwIfAborted()
      // A transaction takes a while; checkpoints are recorded in commit order, as the database would keep them.
      await new Promise(resolve => setTimeout(resolve, options.saveMs?.(page) ?? 0))
      const cp = structuredClone(checkpoint as DrchronoCheckpoint)
      // The invariant that makes resuming safe: a checkpoint never names a page whose records have not landed.
      for (const p of cp.done) if (p !== page && !pages.has(p)) unsafe.push(p)
      if (!pages.has(page)) pages.set(page, recordTexts(records))
      checkpoints.push(cp)
      progress.push(update)
      options.onSave?.(page)
    },
    async saveCheckpoint (checkpoint) { checkpoints.push(checkpoint as DrchronoCheckpoint) },
    async setUpstreamInfo (info) { Object.assign(upstreamInfo, structuredClone(info)) },
    async park () { throw new Error('DrChrono jobs never wait for a webhook') },
    reportWait () {},
  }
  /** Stored records in result order: page, then position. */
  const records = () => [...pages.keys()].sort((a, b) => a - b).flatMap(p => pages.get(p) ?? [])
  return { ctx, controller, pages, checkpoints, unsafe, progress, upstreamInfo, records }
}

/** One request to the stub, as its handler sees it: `page` from the POST's query, or the uuid a GET names. */
export interface StubRequest {
  method: string
  /** The page a POST asks for, or the page whose uuid a GET polls (the stub's uuids are page numbers). */
  page: number
  /** How many requests of this method this page has had, this one included. */
  nth: number
}

/** What the stub answers, once `after` settles when given; `hold: true` never answers (until the client gives up). */
export type StubAnswer = { status: number, body: unknown, after?: Promise<unknown> } | { hold: true }

/**
 * A hand-written DrChrono whose uuids are page numbers: `answer` decides every reply. Returns the adapter
 * pointed at it, and the requests it saw (held ones report when the client dropped them).
 */
export async function stubDrchrono (t: TestLike, answer: (r: StubRequest) => StubAnswer, settings: Partial<DrchronoSettings> = {}) {
  const seen: Array<StubRequest & { dropped?: boolean }> = []
  const counts = new Map<string, number>()
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const method = req.method ?? 'GET'
    const page = Number(url.searchParams.get('page') ?? url.searchParams.get('uuid') ?? 1)
    const key = `${method} ${page}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
    const r: StubRequest & { dropped?: boolean } = { method, page, nth: counts.get(key) ?? 1 }
    seen.push(r)
    const a = answer(r)
    if ('hold' in a) {
      res.on('close', () => { r.dropped = true })
      return
    }
    void Promise.resolve(a.after).then(() => {
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => {
    await client.close()
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  const { port } = server.address() as { port: number }
  const adapter = drchronoAdapter({ baseUrl: `http://127.0.0.1:${port}`, accessToken: 'x', pollInitialMs: 1, pollMaxMs: 5, ...UNMETERED, ...settings }, client, memoryServices())
  return { adapter, seen }
}

/** A Complete page of a stub list of `pages` pages, two records each. */
export const stubPage = (n: number, pages: number, extra: Record<string, unknown> = {}) =>
  ({ status: 'Complete', pagination: { count: pages * 2, pages, page_size: 2, page: n }, uuid: String(n), results: [{ id: n }, { id: -n }], ...extra })

/** The POST's answer for a stub page. */
export const stubAccepted = (n: number): StubAnswer => ({ status: 201, body: { status: 'In progress', uuid: String(n) } })
