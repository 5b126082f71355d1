/**
 * Builds the real gateway for a test, on a fresh database and a real loopback port, and tears it down.
 * Its log lines are captured (JSON text) so tests can read them or grep them for leaks.
 */
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { createLogger } from '../../src/logger.js'
import { registry as builtIn, type Registry } from '../../src/upstreams/registry.js'
import { testDatabase } from './database.js'

interface TestLike { teardown (fn: () => unknown): void }

export interface TestGateway {
  app: FastifyInstance
  url: string
  config: Config
  databaseUrl: string
  logs: string[]
  /** fetch against the gateway with the client key of `client` (default: the first configured key). */
  request (path: string, init?: RequestInit & { key?: string | null }): Promise<TestResponse>
}

/** A fetch Response whose JSON body tests may read without declaring its type. */

export type TestResponse = Omit<Response, 'json'> & { json (): Promise<any> }

export const clientKeys = { alpha: 'alpha-key-0123456789', beta: 'beta-key-0123456789' }

/**
 * The TOKEN_ENCRYPTION_KEY of every gateway this test process starts (apps and child processes alike), so
 * replicas and restarts on one database open each other's stored tokens, and no test writes a key file.
 */
export const testTokenKey = randomBytes(32).toString('base64')

export async function startGateway (t: TestLike, opts: {
  env?: Record<string, string>
  startWorkers?: boolean
  databaseUrl?: string
  logLevel?: Config['LOG_LEVEL']
  /** The upstreams the gateway knows (default: the built-in registry). */
  registry?: Registry
} = {}): Promise<TestGateway> {
  const databaseUrl = opts.databaseUrl ?? await testDatabase(t)
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    GATEWAY_API_KEYS: `alpha:${clientKeys.alpha},beta:${clientKeys.beta}`,
    WORKER_POLL_SECONDS: '1',
    SWEEP_INTERVAL_SECONDS: '1',
    SANDBOX: 'false',
    // Off unless a test sets them: tests fire requests far faster than any client would (test/api/limits.test.ts).
    RATE_LIMIT_MAX: '0',
    RATE_LIMIT_ANONYMOUS_MAX: '0',
    TOKEN_ENCRYPTION_KEY: testTokenKey,
    ...opts.env,
  }, opts.registry ?? builtIn)
  const logs: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _enc, done) { logs.push(chunk.toString('utf8')); done() } })
  const logger = createLogger({ LOG_LEVEL: opts.logLevel ?? 'info', registry: config.registry }, sink)
  const app = await buildApp(config, { databaseUrl, logger, startWorkers: opts.startWorkers ?? true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const url = `http://127.0.0.1:${port}`
  return {
    app,
    url,
    config,
    databaseUrl,
    logs,
    request (path, init = {}) {
      const { key = clientKeys.alpha, headers, ...rest } = init
      const h = new Headers(headers)
      if (key !== null) h.set('authorization', `Bearer ${key}`)
      if (rest.body !== undefined && !h.has('content-type')) h.set('content-type', 'application/json')
      return fetch(url + path, { ...rest, headers: h }) as Promise<TestResponse>
    },
  }
}

/** Polls a job until it leaves queued/running (or the deadline passes) and returns its last view. */
export async function waitForJob (gw: TestGateway, id: string, opts: { key?: string, timeoutMs?: number, until?: (job: any) => boolean } = {}): Promise<any> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000)
  const done = opts.until ?? ((job: any) => !['queued', 'running'].includes(job.status))
  for (;;) {
    const res = await gw.request(`/jobs/${id}`, { key: opts.key })
    const job = await res.json()
    if (done(job)) return job
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status} after the deadline`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
