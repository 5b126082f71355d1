/**
 * The DrChrono adapter outside the gateway: an adapter pointed at a simulator, a job on the engine's side in memory
 * (test/helpers/job-context.ts), and a hand-written DrChrono for answers the simulator never gives.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { drchronoAdapter, type DrchronoCheckpoint, type DrchronoSettings } from '../../src/upstreams/drchrono/adapter.js'
import type { DrchronoResource } from '../../src/upstreams/drchrono/params.js'
import { SANDBOX_CREDENTIALS, startDrchronoSimulator, type DrchronoSimulatorOptions } from '../../src/upstreams/drchrono/simulator/index.js'
import { UpstreamClient } from '../../src/upstreams/http.js'
import { fakeJob } from './job-context.js'
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
 * A DrChrono job on the engine's side in memory (test/helpers/job-context.ts), which also watches the invariant that
 * makes resuming safe: `unsafe` lists each page a checkpoint named as done before that page's records had landed.
 * Every save yields to the event loop (after `saveMs`, when given), as a transaction would.
 */
export function drchronoJob (resource: DrchronoResource, params: Record<string, unknown>, options: {
  checkpoint?: DrchronoCheckpoint
  onSave?: (page: number) => void
  /** How long each page's save takes. */
  saveMs?: (page: number) => number
} = {}) {
  const unsafe: number[] = []
  const job = fakeJob<DrchronoCheckpoint>(resource, params, {
    checkpoint: options.checkpoint,
    saveMs: options.saveMs ?? (() => 0),
    afterCheckpoint: (cp, { page }) => {
      if (page === null) return
      for (const p of cp.done) if (p !== page && !job.pages.has(p)) unsafe.push(p)
      options.onSave?.(page)
    },
  })
  return { ...job, unsafe }
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
