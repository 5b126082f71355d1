/**
 * The gateway as the deployer runs it: `node dist/server.js` in a child process (built by `npm run bench`),
 * pointed at the bench database and at simulators on loopback. Its memory is read from /proc.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { appendFileSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** VmRSS and VmHWM (peak RSS since start) of a process, in bytes. */
export interface Memory { rss: number, hwm: number }

export function readMemory (pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
    if (m === null) throw new Error(`/proc/${pid}/status has no ${field}`)
    return Number(m[1]) * 1024
  }
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

export interface GatewayProcess {
  url: string
  pid: number
  /** The client key every bench request sends. */
  key: string
  /** fetch() against the gateway with the client key. */
  request (path: string, init?: RequestInit): Promise<Response>
  memory (): Memory
  /** The last few kilobytes the process wrote (stdout and stderr). */
  output (): string
  /** SIGTERM, then SIGKILL after 30 s. Idempotent. */
  stop (): Promise<void>
}

export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no free port'))))
    })
  })
}

/**
 * Starts a gateway with the production defaults and `env` on top. Request logging is off (LOG_LEVEL=warn) and so
 * is the per-client rate limit: both are deployment policy, not the cost of the code being measured.
 */
/**
 * The node flags the gateway runs with in production: the image's CMD and `npm start` use exactly these
 * (test/deploy/production-install.test.ts checks), and so does the bench. A young generation of at most 4 MB
 * semi-spaces: a job's garbage is short-lived Buffers and their wrappers, and V8's default (16 MB, sized for
 * throughput) held 30-60 MB more at peak for no measurable gain in speed. WebAssembly stays in V8's baseline
 * compiler (Liftoff): undici parses HTTP with llhttp compiled to WebAssembly, and when it got hot V8 recompiled it
 * with TurboFan on a background thread, whose compile zones (39 MB in one 40,000-record job, seen with gdb on
 * AccountingAllocator::AllocateSegment) stayed in that thread's glibc arena for the life of the process.
 */
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--liftoff-only']

/**
 * DrChrono's budgets lifted, for the lines that measure the gateway's own work (ingest, reads, scheduling): the
 * simulator has no limits, and a 1000-page ingest at 8 requests a second would measure the ceiling, not the gateway.
 */
export const UNMETERED_DRCHRONO: Readonly<Record<string, string>> = { DRCHRONO_REQUESTS_PER_HOUR: '1000000', DRCHRONO_REQUESTS_PER_SECOND: '1000' }

export async function startGateway (databaseUrl: string, env: Record<string, string>): Promise<GatewayProcess> {
  const port = await freePort()
  // 32 characters: production refuses shorter client keys.
  const key = randomBytes(24).toString('base64url')
  // BENCH_CPU_PROF=<dir>: each gateway writes a V8 CPU profile there when it exits (open it in Chrome DevTools,
  // or summarise it with bench/profile-summary.ts). BENCH_GATEWAY_NODE_FLAGS: more node flags, e.g. --trace-gc.
  const profile = process.env.BENCH_CPU_PROF
  const flags = [
    ...GATEWAY_NODE_FLAGS,
    ...(profile === undefined || profile === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${profile}`]),
    ...(process.env.BENCH_GATEWAY_NODE_FLAGS ?? '').split(' ').filter(Boolean),
  ]
  const child = spawn(process.execPath, [...flags, 'dist/server.js'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
      DATABASE_URL: databaseUrl,
      GATEWAY_API_KEYS: `bench:${key}`,
      SANDBOX: 'false',
      LOG_LEVEL: 'warn',
      WORKER_POLL_SECONDS: '1',
      RATE_LIMIT_MAX: '0',
      RATE_LIMIT_ANONYMOUS_MAX: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = once(child, 'exit')
  let output = ''
  // BENCH_GATEWAY_OUT=<file>: all the gateway writes goes there too (e.g. with BENCH_GATEWAY_NODE_FLAGS=--trace-gc).
  const copyTo = process.env.BENCH_GATEWAY_OUT
  const keep = (d: Buffer): void => {
    output = (output + d.toString()).slice(-4000)
    if (copyTo !== undefined && copyTo !== '') appendFileSync(copyTo, d)
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 90_000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the gateway exited before it was ready:\n${output}`)
    const ok = await fetch(`${url}/health/ready`).then(r => r.ok, () => false)
    if (ok) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`the gateway was not ready after 90 s:\n${output}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  let stopping: Promise<void> | undefined
  return {
    url,
    pid: child.pid as number,
    key,
    request (path, init = {}) {
      const headers = new Headers(init.headers)
      headers.set('authorization', `Bearer ${key}`)
      if (init.body !== undefined) headers.set('content-type', 'application/json')
      return fetch(url + path, { ...init, headers })
    },
    memory: () => readMemory(child.pid as number),
    output: () => output,
    stop: () => (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const force = setTimeout(() => child.kill('SIGKILL'), 30_000)
      await exited
      clearTimeout(force)
    })()),
  }
}
