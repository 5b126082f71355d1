/**
 * The SMART Health IT bulk-data-server ("the peer") as a process: where its folder is, how to start and stop it,
 * and its access log. Free of tap, so the bench (bench/scenarios/fhir-export.ts) starts it the same way the peer
 * tests do; `smart-peer.ts` wraps it for a tap test (teardown, skip when the folder is missing).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** The shared peers folder: SMART_PEER_DIR, or `../shared/peers` beside the repository. */
export const peersDir = process.env.SMART_PEER_DIR !== undefined && process.env.SMART_PEER_DIR !== ''
  ? resolve(process.env.SMART_PEER_DIR)
  : fileURLToPath(new URL('../../../shared/peers', import.meta.url))

const script = join(peersDir, 'smart-bulk-data-server.sh')

/** What to say when the peer is missing: where it was looked for and how to provide it. */
export const PEER_MISSING = `no SMART bulk-data-server peer at ${peersDir}: put the shared peers/ folder at ../shared/peers beside the repository, or set SMART_PEER_DIR`

/** The sample keys' algorithms (static/keys/<alg>.{public,private}.json in the server's folder). */
export type PeerKeyAlg = 'RS384' | 'ES384'

/** A private JWK as the peer ships it: the public members plus `d` (and the RSA CRT members). */
export type PrivateJwk = Record<string, unknown> & { kty: string, kid: string, alg: string, d: string }

export interface SmartPeer {
  /** `http://127.0.0.1:N/fhir`: the open base. */
  baseUrl: string
  /** `http://127.0.0.1:N`. */
  origin: string
  /** Every stdout line but the ready line: the server's own start-up lines, then its access log (Apache combined). */
  accessLog: string[]
  /** When each line of `accessLog` arrived (performance.now() of this process), index for index. */
  accessLogSeenAt: number[]
  /** The base with simulation options: `http://127.0.0.1:N/<base64url JSON>/fhir`. */
  simBase (options: Record<string, unknown>): string
  /** Registers a public JWK set at /auth/register (SMART Backend Services) and returns the client_id. */
  register (jwks: { keys: unknown[] }, opts?: { dur?: number, err?: string }): Promise<string>
  /** The sample public JWK set for `alg` (what `register` takes). */
  publicKeySet (alg: PeerKeyAlg): Promise<{ keys: unknown[] }>
  /** The sample private JWK for `alg` (the entry with `d`). */
  privateKey (alg: PeerKeyAlg): Promise<PrivateJwk>
  /** The access-log lines that match, waiting (up to `timeoutMs`, a hang detector) until at least `count` have come. */
  waitForLog (pattern: RegExp, opts?: { count?: number, timeoutMs?: number }): Promise<string[]>
}

/** A peer this process started: its pid (the server's own: the script execs it) and how to stop it. */
export interface PeerProcess extends SmartPeer {
  pid: number
  /** SIGTERM, then SIGKILL after 10 s. Idempotent. */
  stop (): Promise<void>
}

/** Whether the peers folder (its start script) is where the tests look for it. */
export function peerAvailable (): boolean {
  return existsSync(script)
}

/** base64url of the JSON of `options`: the path segment the peer reads simulation options from. */
export function simSegment (options: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(options)).toString('base64url')
}

/** The sample public JWK set the peer ships for `alg`: what a client registers. */
export async function publicKeySet (alg: PeerKeyAlg): Promise<{ keys: unknown[] }> {
  return JSON.parse(await readFile(join(peersDir, 'smart-bulk-data-server', 'static', 'keys', `${alg}.public.json`), 'utf8'))
}

/** The private half of the sample key for `alg`: the entry of `<alg>.private.json` that carries `d`. */
export async function privateKey (alg: PeerKeyAlg): Promise<PrivateJwk> {
  const set = JSON.parse(await readFile(join(peersDir, 'smart-bulk-data-server', 'static', 'keys', `${alg}.private.json`), 'utf8')) as { keys: Array<Record<string, unknown>> }
  const key = set.keys.find(k => typeof k.d === 'string')
  if (key === undefined) throw new Error(`${alg}.private.json holds no private key`)
  return key as PrivateJwk
}

/**
 * Starts the peer (`smart-bulk-data-server.sh start`, which installs it first when needed: minutes). The caller
 * stops it; `onSpawn` gets the stop function as soon as the process exists, before it is ready (a test's teardown).
 * `readyTimeoutMs` only detects a hang; the default allows a first install.
 */
export async function launchPeer (opts: { readyTimeoutMs?: number, onSpawn?: (stop: () => Promise<void>) => void } = {}): Promise<PeerProcess> {
  // Without NODE_OPTIONS: tap's process-tracking hooks put their --import there for every child (even when the env
  // given to spawn has none), and the server's node would load its TypeScript through them, and fail. env(1) and
  // the script exec, so the pid spawned is the server's.
  const child = spawn('env', ['-u', 'NODE_OPTIONS', 'bash', script, 'start'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit')
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => (stopping ??= (async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited.catch(() => {})
    clearTimeout(killer)
  })())
  opts.onSpawn?.(stop)

  // stderr is the install's progress and the server's warnings: kept for the error if it never gets ready.
  const stderr: string[] = []
  createInterface({ input: child.stderr }).on('line', line => {
    stderr.push(line)
    if (stderr.length > 50) stderr.shift()
  })
  const accessLog: string[] = []
  const accessLogSeenAt: number[] = []
  const waiters = new Set<() => void>()
  let baseUrl: string
  try {
    baseUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`the peer was not ready after ${opts.readyTimeoutMs ?? 600_000} ms:\n${stderr.join('\n')}`))
      }, opts.readyTimeoutMs ?? 600_000)
      // Read stdout to its end for the life of the server: it is the access log, and a full pipe would stall it.
      createInterface({ input: child.stdout }).on('line', line => {
        const ready = /^ready (http\S+)$/.exec(line)
        if (ready !== null) {
          clearTimeout(timer)
          resolve(ready[1]!)
          return
        }
        accessLog.push(line)
        accessLogSeenAt.push(performance.now())
        for (const wake of waiters) wake()
      })
      exited.then(([code, signal]) => {
        clearTimeout(timer)
        reject(new Error(`the peer exited (${code ?? signal}) before it was ready:\n${stderr.join('\n')}`))
      }, (err: unknown) => {
        clearTimeout(timer)
        reject(err)
      })
    })
  } catch (err) {
    await stop()
    throw err
  }
  const origin = new URL(baseUrl).origin

  return {
    pid: child.pid as number,
    stop,
    baseUrl,
    origin,
    accessLog,
    accessLogSeenAt,
    simBase: options => `${origin}/${simSegment(options)}/fhir`,
    async register (jwks, registerOpts = {}) {
      const form = new URLSearchParams({ jwks: JSON.stringify(jwks) })
      if (registerOpts.dur !== undefined) form.set('dur', String(registerOpts.dur))
      if (registerOpts.err !== undefined) form.set('err', registerOpts.err)
      const res = await fetch(`${origin}/auth/register`, { method: 'POST', body: form })
      const text = await res.text()
      if (res.status !== 200) throw new Error(`POST /auth/register answered ${res.status}: ${text}`)
      return text.trim()
    },
    publicKeySet,
    privateKey,
    async waitForLog (pattern, waitOpts = {}) {
      const count = waitOpts.count ?? 1
      const matching = () => accessLog.filter(line => pattern.test(line))
      if (matching().length >= count) return matching()
      return new Promise<string[]>((resolve, reject) => {
        const wake = () => {
          const found = matching()
          if (found.length < count) return
          clearTimeout(timer)
          waiters.delete(wake)
          resolve(found)
        }
        const timer = setTimeout(() => {
          waiters.delete(wake)
          reject(new Error(`the peer's access log has ${matching().length} of ${count} lines matching ${pattern}`))
        }, waitOpts.timeoutMs ?? 60_000)
        waiters.add(wake)
      })
    },
  }
}
