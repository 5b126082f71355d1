/**
 * The gateway as a real child process (`node --import tsx src/server.ts`), for what only a process shows:
 * SIGKILL and restart, two gateways on one database, graceful SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { clientKeys, testTokenKey } from './gateway.js'

interface TestLike { teardown (fn: () => unknown): void }

export interface GatewayProcess {
  url: string
  child: ChildProcess
  /** Every log line so far, parsed. */
  logs: Array<Record<string, unknown>>
  request (path: string, init?: RequestInit): Promise<Response>
  kill (signal: NodeJS.Signals): Promise<void>
}

export async function spawnGateway (t: TestLike, env: Record<string, string>): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: new URL('../..', import.meta.url).pathname,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      SANDBOX: 'false',
      GATEWAY_API_KEYS: `alpha:${clientKeys.alpha}`,
      WORKER_POLL_SECONDS: '1',
      LOG_LEVEL: 'info',
      // Off unless a test sets them, as for the in-process gateways: tests poll far faster than any client would.
      RATE_LIMIT_MAX: '0',
      RATE_LIMIT_ANONYMOUS_MAX: '0',
      TOKEN_ENCRYPTION_KEY: testTokenKey,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const logs: Array<Record<string, unknown>> = []
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const ready = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>
        logs.push(entry)
        const match = /API docs at http:\/\/localhost:(\d+)\/docs/.exec(String(entry.msg))
        if (match !== null) resolve(`http://127.0.0.1:${match[1]}`)
      } catch { /* not a log line */ }
    })
    void exited.then(() => reject(new Error(`gateway exited before it was ready: ${stderr}`)))
  })
  const url = await ready
  return {
    url,
    child,
    logs,
    request (path, init = {}) {
      const headers = new Headers(init.headers)
      headers.set('authorization', `Bearer ${clientKeys.alpha}`)
      if (init.body !== undefined) headers.set('content-type', 'application/json')
      return fetch(url + path, { ...init, headers })
    },
    async kill (signal) {
      child.kill(signal)
      await exited
    },
  }
}
