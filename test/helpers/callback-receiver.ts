/**
 * A completion-callback receiver on loopback, for tests: it keeps every request it gets (headers and exact body),
 * verifies each one with `standardwebhooks`' own verifier, and answers as the test says (a status, a hang).
 */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'

interface TestLike { teardown (fn: () => unknown): void }

/** A secret in CALLBACK_SECRETS' format: `whsec_` and 32 random bytes in base64. */
export const newCallbackSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`

/** One request as it arrived, and whether its signature verified (and what the verifier parsed). */
export interface ReceivedCallback {
  headers: Record<string, string>
  body: string
  verified: boolean
  event: { type: string, timestamp: string, data: any } | null
  /** The status it was answered with (null while it hangs). */
  answered: number | null
}

/**
 * What to answer: a status, 'hang' (never answer; the socket stays open until the test ends), or `endless` and a
 * status: that status, then a body that never ends.
 */
export type Answer = number | 'hang' | { endless: number }

export interface CallbackReceiver {
  url: string
  origin: string
  received: ReceivedCallback[]
  /** Received and verified, answered 2xx. */
  delivered (): ReceivedCallback[]
  /** Sets how the next requests are answered: each call of `answer` decides one (default 204). */
  answerWith (answer: (request: ReceivedCallback, index: number) => Answer): void
  /** Resolves when `n` requests have arrived. */
  waitFor (n: number, timeoutMs?: number): Promise<ReceivedCallback[]>
  close (): Promise<void>
}

export async function startCallbackReceiver (t: TestLike, secret: string, opts: { port?: number, path?: string } = {}): Promise<CallbackReceiver> {
  const verifier = new Webhook(secret)
  const received: ReceivedCallback[] = []
  const hanging = new Set<ServerResponse>()
  let answer: (request: ReceivedCallback, index: number) => Answer = () => 204
  const waiters: Array<() => void> = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v ?? '']))
      const entry: ReceivedCallback = { headers, body, verified: false, event: null, answered: null }
      try {
        entry.event = verifier.verify(body, headers) as ReceivedCallback['event']
        entry.verified = true
      } catch {}
      received.push(entry)
      for (const wake of waiters.splice(0)) wake()
      const decided = answer(entry, received.length - 1)
      if (decided === 'hang') {
        hanging.add(res)
        return
      }
      if (typeof decided === 'object') {
        entry.answered = decided.endless
        hanging.add(res)
        res.on('error', () => {})
        res.writeHead(decided.endless, { 'content-type': 'text/plain' })
        const chunk = Buffer.alloc(16 * 1024, 'x')
        const pump = (): void => { while (!res.destroyed && res.write(chunk)); if (!res.destroyed) res.once('drain', pump) }
        pump()
        return
      }
      entry.answered = decided
      if (decided >= 300 && decided < 400) res.setHeader('location', `http://127.0.0.1:${(server.address() as AddressInfo).port}/elsewhere`)
      res.statusCode = decided
      res.end(decided === 204 ? undefined : 'ok')
    })
  })
  await new Promise<void>(resolve => server.listen(opts.port ?? 0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const origin = `http://127.0.0.1:${port}`
  const close = async (): Promise<void> => {
    for (const res of hanging) res.destroy()
    hanging.clear()
    server.closeAllConnections()
    await new Promise<void>(resolve => server.close(() => resolve()))
  }
  t.teardown(async () => { if (server.listening) await close() })
  return {
    url: `${origin}${opts.path ?? '/hooks/bulk'}`,
    origin,
    received,
    delivered: () => received.filter(r => r.verified && r.answered !== null && r.answered >= 200 && r.answered < 300),
    answerWith (fn) { answer = fn },
    async waitFor (n, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs
      while (received.length < n) {
        if (Date.now() > deadline) throw new Error(`the receiver got ${received.length} of ${n} callbacks in ${timeoutMs} ms`)
        await new Promise<void>(resolve => {
          const timer = setTimeout(resolve, 200)
          waiters.push(() => { clearTimeout(timer); resolve() })
        })
      }
      return received.slice(0, n)
    },
    close,
  }
}
