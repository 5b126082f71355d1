import { getEventListeners } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { UpstreamClient, type UpstreamClientOptions } from '../../src/upstreams/http.js'
import type { UpstreamEvent } from '../../src/contract/upstream-events.js'
import { MemoryBudgetStore, type BudgetSpec, type BudgetWait } from '../../src/upstreams/request-budget.js'

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void

/** A real server on an ephemeral loopback port, closed (with its connections) at the test's end. */
async function serve (t: Test, handler: Handler) {
  const seen = { count: 0, connections: 0, urls: [] as string[] }
  const server = createServer((req, res) => {
    seen.urls.push(req.url ?? '')
    handler(req, res, ++seen.count)
  })
  server.on('connection', () => { seen.connections++ })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

function clientFor (t: Test, options: UpstreamClientOptions = {}) {
  const events: UpstreamEvent[] = []
  const client = new UpstreamClient({ baseDelayMs: 5, maxDelayMs: 20, onEvent: e => events.push(e), ...options })
  t.teardown(() => client.close())
  return { client, events, retries: () => events.filter(e => e.type === 'retry') }
}

const signal = (): AbortSignal => new AbortController().signal
const reply = (res: ServerResponse, status: number, body = '', headers: Record<string, string> = {}): void => {
  res.writeHead(status, headers).end(body)
}

t.test('5xx answers are retried until a success; bodies are drained so one socket serves all', async t => {
  const { url, seen } = await serve(t, (_req, res, n) => n < 3 ? reply(res, n === 1 ? 503 : 500, 'busy') : reply(res, 200, '{"ok":true}'))
  const { client, retries } = clientFor(t)
  const jobSignal = signal()
  const res = await client.request({ method: 'GET', url: `${url}/a`, signal: jobSignal, upstream: 'test' })
  t.equal(res.status, 200)
  t.equal(getEventListeners(jobSignal, 'abort').length, 0, 'a job\'s long-lived signal keeps no listener per request')
  t.same(res.json(), { ok: true })
  t.equal(seen.count, 3)
  t.same(retries().map(e => e.type === 'retry' && e.reason), ['503', '500'])
  t.equal(seen.connections, 1, 'retried responses were consumed and the socket reused')
})

t.test('429 waits for Retry-After', async t => {
  const { url, seen } = await serve(t, (_req, res, n) => n === 1 ? reply(res, 429, '', { 'retry-after': '1' }) : reply(res, 200))
  const { client, retries } = clientFor(t)
  const started = Date.now()
  const res = await client.request({ method: 'GET', url, signal: signal(), upstream: 'test' })
  t.equal(res.status, 200)
  t.equal(seen.count, 2)
  t.match(retries(), [{ delayMs: 1000, reason: '429' }])
  t.ok(Date.now() - started >= 900, 'waited about a second, not the 5 ms backoff')
})

t.test('429 without Retry-After uses retryAfterMs(res), e.g. DrChrono\'s detail', async t => {
  const { url } = await serve(t, (_req, res, n) => n === 1
    ? reply(res, 429, '{"detail":"Request was throttled. Expected available in 0.03 seconds."}')
    : reply(res, 200))
  const { client, retries } = clientFor(t)
  const retryAfterMs = (res: { json: () => unknown }): number | undefined => {
    const m = /available in ([\d.]+) seconds/.exec(String((res.json() as { detail?: string }).detail))
    return m ? Number(m[1]) * 1000 : undefined
  }
  const res = await client.request({ method: 'GET', url, signal: signal(), upstream: 'drchrono', retryAfterMs })
  t.equal(res.status, 200)
  t.match(retries(), [{ delayMs: 30 }])
})

t.test('a server-requested wait beyond maxRetryAfterMs fails at once', async t => {
  const reset = String(Math.floor(Date.now() / 1000) + 600)
  const { url, seen } = await serve(t, (req, res) => reply(res, 429, '', req.url === '/reset' ? { 'x-ratelimit-reset': reset } : { 'retry-after': '3600' }))
  const { client } = clientFor(t)
  for (const path of ['/retry-after', '/reset']) {
    await t.rejects(client.request({ method: 'GET', url: url + path, signal: signal(), upstream: 'test' }),
      { name: 'UpstreamError', code: 'upstream_rate_limited', upstreamStatus: 429 })
  }
  t.equal(seen.count, 2, 'one attempt each')
})

t.test('a reset connection is retried', async t => {
  const { url, seen } = await serve(t, (req, res, n) => n === 1 ? req.socket.destroy() : reply(res, 200, 'fine'))
  const { client, events } = clientFor(t)
  const res = await client.request({ method: 'GET', url, signal: signal(), upstream: 'test' })
  t.equal(res.text(), 'fine')
  t.equal(seen.count, 2)
  t.match(events.find(e => e.type === 'network_error'), { code: /^(UND_ERR_SOCKET|ECONNRESET)$/ })
})

t.test('a non-idempotent request is not replayed after it may have arrived', async t => {
  const { url, seen } = await serve(t, req => req.socket.destroy())
  const { client } = clientFor(t)
  await t.rejects(client.request({ method: 'POST', url, body: '{}', signal: signal(), upstream: 'clinia', idempotent: false }),
    { code: 'upstream_unavailable', upstreamStatus: null })
  t.equal(seen.count, 1)
})

t.test('a refused connection exhausts attempts as upstream_unavailable', async t => {
  const { url } = await serve(t, (_req, res) => reply(res, 200))
  const port = new URL(url).port
  const closed = createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const deadPort = (closed.address() as AddressInfo).port
  await new Promise(resolve => closed.close(resolve))
  t.not(String(deadPort), port)
  const { client, events } = clientFor(t)
  await t.rejects(client.request({ method: 'GET', url: `http://127.0.0.1:${deadPort}/`, signal: signal(), upstream: 'test', maxAttempts: 3 }),
    { name: 'UpstreamError', code: 'upstream_unavailable', upstreamStatus: null })
  t.equal(events.filter(e => e.type === 'network_error').length, 3)
})

// undici checks these timeouts about once a second, so both cases run side by side to keep the file quick.
t.test('a silent server or a stalled body times out as upstream_timeout', async t => {
  const silent = await serve(t, () => {})
  const stalled = await serve(t, (_req, res) => { res.writeHead(200, { 'content-length': '100' }); res.write('partial') })
  const { client } = clientFor(t)
  const opts = { method: 'GET', signal: signal(), upstream: 'test', timeoutMs: 100 } as const
  await Promise.all([
    t.rejects(client.request({ ...opts, url: silent.url, maxAttempts: 2 }), { code: 'upstream_timeout', upstreamStatus: null }),
    t.rejects(client.request({ ...opts, url: stalled.url, maxAttempts: 1 }), { code: 'upstream_timeout' }),
  ])
  t.equal(silent.seen.count, 2, 'the timed-out attempt was retried')
})

t.test('abort during a backoff sleep rejects promptly with the reason', async t => {
  const { url, seen } = await serve(t, (_req, res) => reply(res, 503))
  const ac = new AbortController()
  const reason = new Error('job cancelled')
  const { client } = clientFor(t, { baseDelayMs: 60_000, maxDelayMs: 60_000, onEvent: e => { if (e.type === 'retry') ac.abort(reason) } })
  const started = Date.now()
  await t.rejects(client.request({ method: 'GET', url, signal: ac.signal, upstream: 'test' }), reason)
  t.ok(Date.now() - started < 5000, 'did not sleep out the minute')
  t.equal(seen.count, 1)
})

t.test('abort while waiting for headers rejects with the reason, not an UpstreamError', async t => {
  const ac = new AbortController()
  const reason = new Error('shutdown')
  const { url } = await serve(t, () => ac.abort(reason))
  const { client } = clientFor(t)
  await t.rejects(client.request({ method: 'GET', url, signal: ac.signal, upstream: 'test' }), reason)
  await t.rejects(client.request({ method: 'GET', url, signal: ac.signal, upstream: 'test' }), reason, 'already aborted')
})

t.test('exhausted retries carry stable codes and no secrets', async t => {
  const { url, seen } = await serve(t, (req, res) => reply(res, req.url?.startsWith('/limited') ? 429 : 502, 'patient Jane Secret'))
  const { client } = clientFor(t)
  const err = await client.request({
    method: 'GET', url: `${url}/patients?last_name=Secret`, headers: { authorization: 'Bearer tok123' }, signal: signal(), upstream: 'test', maxAttempts: 3,
  }).catch((e: unknown) => e)
  t.match(err, { name: 'UpstreamError', code: 'upstream_unavailable', upstreamStatus: 502 })
  t.equal(seen.count, 3)
  t.match((err as Error).message, 'test GET /patients', 'the path says which request failed')
  t.notMatch((err as Error).message, new URL(url).host, 'the host is not named: it may be internal')
  t.notMatch((err as Error).message, /Secret|tok123|last_name/)
  await t.rejects(client.request({ method: 'GET', url: `${url}/limited`, signal: signal(), upstream: 'test', maxAttempts: 2 }),
    { code: 'upstream_rate_limited', upstreamStatus: 429 })
})

t.test('non-retryable answers are returned as they are, redirects included', async t => {
  const { url, seen } = await serve(t, (req, res) => req.url === '/moved'
    ? reply(res, 302, '', { location: '/elsewhere' })
    : reply(res, 404, '{"detail":"Invalid uuid specified"}', { 'set-cookie': 'a=1', 'X-Custom': 'v' }))
  const { client } = clientFor(t)
  const res = await client.request({ method: 'GET', url: `${url}/gone`, signal: signal(), upstream: 'test' })
  t.equal(res.status, 404)
  t.same(res.json(), { detail: 'Invalid uuid specified' })
  t.equal(res.headers['x-custom'], 'v')
  const moved = await client.request({ method: 'GET', url: `${url}/moved`, signal: signal(), upstream: 'test' })
  t.equal(moved.status, 302)
  t.equal(moved.headers.location, '/elsewhere')
  t.equal(seen.count, 2)
  const custom = await client.request({ method: 'GET', url: `${url}/gone`, signal: signal(), upstream: 'test', retryable: r => r.status === 404, maxAttempts: 2 })
    .catch((e: unknown) => e)
  t.match(custom, { code: 'upstream_unavailable', upstreamStatus: 404 }, 'a custom retryable predicate is honoured')
})

t.test('invalid JSON is invalid_upstream_response; oversized bodies are upstream_response_too_large', async t => {
  const { url } = await serve(t, (req, res) => {
    if (req.url === '/chunked') { res.write('x'.repeat(600)); res.end('x'.repeat(600)) } else reply(res, 200, req.url === '/big' ? 'x'.repeat(2000) : '{"a":')
  })
  const { client } = clientFor(t, { maxBodyBytes: 1000 })
  const res = await client.request({ method: 'GET', url, signal: signal(), upstream: 'test' })
  t.throws(() => res.json(), { name: 'UpstreamError', code: 'invalid_upstream_response', upstreamStatus: 200 })
  for (const path of ['/big', '/chunked']) {
    await t.rejects(client.request({ method: 'GET', url: url + path, signal: signal(), upstream: 'test' }), { code: 'upstream_response_too_large' })
  }
})

t.test('stream() retries the head and hands over a 2xx body unread', async t => {
  const { url, seen } = await serve(t, (req, res, n) => {
    if (req.url === '/missing') reply(res, 404, 'no')
    else if (n === 1) reply(res, 503)
    else reply(res, 200, 'zipbytes'.repeat(1000))
  })
  const { client } = clientFor(t)
  const res = await client.stream({ method: 'GET', url: `${url}/export.zip`, signal: signal(), upstream: 'ocl' })
  t.equal(res.status, 200)
  let size = 0
  for await (const chunk of res.body) size += (chunk as Buffer).length
  t.equal(size, 8000)
  t.equal(seen.count, 2)
  await t.rejects(client.stream({ method: 'GET', url: `${url}/missing`, signal: signal(), upstream: 'ocl' }), { code: 'upstream_failed', upstreamStatus: 404 })
})

/** A clock that only moves when the budget sleeps, so a minute passes instantly. */
function fakeClock (start = Date.now()) {
  const clock = { now: start, sleeps: [] as number[] }
  return Object.assign(clock, {
    read: () => clock.now,
    sleep: async (ms: number, signal: AbortSignal) => {
      signal.throwIfAborted()
      const until = clock.now + ms
      clock.sleeps.push(ms)
      await new Promise(resolve => setImmediate(resolve))
      clock.now = Math.max(clock.now, until)
    },
  })
}

/** A budget of `limit` requests per sliding minute. */
const perMinute = (limit: number, key = 'key'): BudgetSpec => ({
  upstream: 'cliniko', key, windows: [{ limit, windowMs: 60_000, kind: 'sliding', name: 'minute', label: 'the per-minute budget' }],
})

t.test('MemoryBudgetStore: no 60 s window holds more than the limit', async t => {
  const clock = fakeClock(0)
  const budget = new MemoryBudgetStore({ now: clock.read, sleep: clock.sleep })
  const times: number[] = []
  await Promise.all(Array.from({ length: 40 }, async () => {
    await budget.take(perMinute(15), undefined, signal())
    times.push(clock.now)
  }))
  await budget.take(perMinute(15, 'other key'), undefined, signal())
  t.equal(times.length, 40)
  t.equal(times.filter(x => x === 0).length, 15, 'the first 15 go at once, then the window slides')
  for (const start of times) t.ok(times.filter(x => x >= start && x < start + 60_000).length <= 15)
  t.equal(times[times.length - 1], 120_000)
})

t.test('MemoryBudgetStore: pause holds the key; abort while waiting rejects with the reason', async t => {
  const clock = fakeClock(1_000)
  const budget = new MemoryBudgetStore({ now: clock.read, sleep: clock.sleep })
  const waits: Array<BudgetWait | null> = []
  const taker = { clientId: 'c', onWait: (_waiter: string, w: BudgetWait | null) => waits.push(w) }
  await budget.pause(perMinute(100, 'k'), 31_000)
  await budget.take(perMinute(100, 'k'), taker, signal())
  t.equal(clock.now, 31_000)
  t.same(waits.map(w => w?.until.getTime() ?? null), [31_000, null], 'the job was told until when it waits, then that it goes on')
  await budget.pause(perMinute(100, 'k'), 1e12)
  const reason = new Error('stop')
  await t.rejects(budget.take(perMinute(100, 'k'), undefined, AbortSignal.abort(reason)), reason)
})

t.test('request() takes the budget before every attempt and a 429 reset pauses the key', async t => {
  const clock = fakeClock()
  const reset = Math.floor(clock.now / 1000) + 30
  const { url, seen } = await serve(t, (_req, res, n) => n === 2
    ? reply(res, 429, '', { 'retry-after': '0', 'x-ratelimit-reset': String(reset) })
    : reply(res, 200))
  const store = new MemoryBudgetStore({ now: clock.read, sleep: clock.sleep })
  const { client } = clientFor(t)
  for (let i = 0; i < 2; i++) {
    const res = await client.request({ method: 'GET', url, signal: signal(), upstream: 'cliniko', budget: { store, spec: perMinute(2, 'k') } })
    t.equal(res.status, 200)
  }
  t.equal(seen.count, 3, 'the 429 was retried')
  t.ok(clock.now >= reset * 1000, 'the retry waited for the reset')
  t.ok(clock.sleeps.length >= 1)
})

t.test('a page-sized body of a declared length is read into a reused buffer once released; others are not', async t => {
  const page = Buffer.alloc(200 * 1024, 'a')
  const { url } = await serve(t, (req, res) => {
    if (req.url === '/chunked') {
      res.writeHead(200, { 'transfer-encoding': 'chunked' })
      res.write(page.subarray(0, 1000))
      res.end(page.subarray(1000))
    } else if (req.url === '/small') reply(res, 200, 'tiny')
    else reply(res, 200, page.toString(), { 'content-length': String(page.length) })
  })
  const { client } = clientFor(t)
  const get = (path: string) => client.request({ method: 'GET', url: `${url}${path}`, signal: signal(), upstream: 'test' })
  const first = await get('/page')
  t.ok(first.body.equals(page), 'the body, byte for byte')
  const memory = first.body.buffer
  first.release()
  first.release() // twice: no effect
  const second = await get('/page')
  t.equal(second.body.buffer, memory, 'the released buffer served the next body')
  t.ok(second.body.equals(page))
  const third = await get('/page')
  t.not(third.body.buffer, memory, 'not released: never reused under its reader')
  second.release()
  const chunked = await get('/chunked')
  t.ok(chunked.body.equals(page), 'a body without a length is read as before')
  t.not(chunked.body.buffer, memory)
  chunked.release()
  const small = await get('/small')
  t.equal(small.text(), 'tiny')
  small.release()
  const fourth = await get('/page')
  t.equal(fourth.body.buffer, memory, 'releasing bodies that were not pooled gave nothing back')
})
