/**
 * The shared client's limits on what upstreams send back: the per-upstream size of a buffered answer and the total
 * deadline of an attempt, against real servers on loopback that send too much or too slowly and count what they sent.
 */
import { getEventListeners } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { UpstreamClient, type UpstreamClientOptions } from '../../src/upstreams/http.js'
import type { UpstreamEvent } from '../../src/contract/upstream-events.js'
import { ByteBudget } from '../../src/upstreams/response-limits.js'
import { checkRecordSizes } from '../../src/contract/record-limits.js'

const MiB = 1024 * 1024

/** A loopback server; `sent` counts the body bytes it handed to its sockets. */
async function serve (t: Test, handler: (req: IncomingMessage, res: ServerResponse, seen: { sent: number }) => void) {
  const seen = { requests: 0, sent: 0 }
  const server = createServer((req, res) => {
    seen.requests++
    handler(req, res, seen)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

/** Writes `total` bytes of a JSON array in 64 KiB pieces as fast as the client takes them, until it goes away. */
function flood (res: ServerResponse, total: number, seen: { sent: number }): void {
  const piece = Buffer.from(`${'"xxxxxxxxxxxxxx",'.repeat(64 * 1024 / 17)}`)
  let closed = false
  res.on('close', () => { closed = true })
  res.writeHead(200, { 'content-type': 'application/json' })
  res.write('[')
  const more = (): void => {
    while (!closed && seen.sent < total) {
      seen.sent += piece.length
      if (!res.write(piece)) { res.once('drain', more); return }
    }
    if (!closed) res.end('0]')
  }
  more()
}

/** A JSON body that arrives a byte at a time, each well within the per-read timeout, `bytes` in all. */
function trickle (res: ServerResponse, bytes: number, seen: { sent: number }): void {
  res.writeHead(200, { 'content-type': 'application/json' })
  const body = `[${' '.repeat(Math.max(0, bytes - 2))}]`
  let i = 0
  const timer = setInterval(() => {
    if (i === body.length) { clearInterval(timer); res.end(); return }
    res.write(body[i++])
    seen.sent++
  }, 20)
  res.on('close', () => clearInterval(timer))
}

function clientFor (t: Test, options: UpstreamClientOptions) {
  const events: UpstreamEvent[] = []
  const client = new UpstreamClient({ baseDelayMs: 5, maxDelayMs: 20, onEvent: e => events.push(e), ...options })
  t.teardown(() => client.close())
  return { client, events }
}

t.test('a buffered answer past its upstream\'s limit fails with upstream_response_too_large, read no further, not retried', async t => {
  const { url, seen } = await serve(t, (_req, res, seen) => flood(res, 48 * MiB, seen))
  const { client } = clientFor(t, { limits: { responseBytes: { cliniko: 256 * 1024 } } })
  await t.rejects(client.request({ method: 'GET', url, signal: new AbortController().signal, upstream: 'cliniko' }),
    { name: 'UpstreamError', code: 'upstream_response_too_large', upstreamStatus: 200, message: /limit of 262144 bytes \(UPSTREAM_MAX_RESPONSE_BYTES\)/ })
  t.equal(seen.requests, 1, 'the same request would be as large again: no retry')
  t.ok(seen.sent < 16 * MiB, `the server could send only what socket buffers hold past the limit (${seen.sent} of 48 MiB)`)
})

t.test('each upstream has its own default limit: Metriport answers a few bytes, so 2 MiB is refused', async t => {
  const { url, seen } = await serve(t, (_req, res, seen) => flood(res, 2 * MiB, seen))
  const { client } = clientFor(t, {})
  t.equal(client.limits.responseBytes('metriport'), MiB)
  t.equal(client.limits.responseBytes('drchrono'), 64 * MiB)
  await t.rejects(client.request({ method: 'GET', url, signal: new AbortController().signal, upstream: 'metriport' }),
    { code: 'upstream_response_too_large' })
  t.equal(seen.requests, 1)
})

t.test('a body that trickles within the per-read timeout ends at the attempt\'s deadline: upstream_timeout after the retries', async t => {
  // 400 bytes at one per 20 ms is 8 s: past the 300 ms deadline, yet never 5 s silent.
  const { url, seen } = await serve(t, (_req, res, seen) => trickle(res, 400, seen))
  const { client, events } = clientFor(t, { timeoutMs: 5000, maxAttempts: 2, limits: { requestDeadlineMs: 300 } })
  const job = new AbortController().signal
  await t.rejects(client.request({ method: 'GET', url, signal: job, upstream: 'cliniko' }), { code: 'upstream_timeout', message: /UPSTREAM_DEADLINE/ })
  t.equal(seen.requests, 2, 'retried as a timeout, then given up')
  t.ok(seen.sent < 400 * 2, 'neither attempt read the whole body')
  t.same(events.filter(e => e.type === 'network_error').map(e => e.type === 'network_error' && e.code), ['UPSTREAM_DEADLINE', 'UPSTREAM_DEADLINE'])
  t.equal(getEventListeners(job, 'abort').length, 0, 'the job\'s signal keeps no listener from the attempts')
})

t.test('a streamed download is held to its own deadline while the caller reads it', async t => {
  const { url } = await serve(t, (_req, res, seen) => trickle(res, 400, seen))
  const { client } = clientFor(t, { timeoutMs: 5000, limits: { downloadDeadlineMs: 300 } })
  const job = new AbortController().signal
  const stream = await client.stream({ method: 'GET', url, signal: job, upstream: 'ocl' })
  const read = (async () => { for await (const chunk of stream.body) void chunk /* reading, slowly */ })()
  await t.rejects(read, { name: 'UpstreamError', code: 'upstream_timeout' })
  t.equal(getEventListeners(job, 'abort').length, 0, 'the job\'s signal keeps no listener once the body ended')
})

t.test('a job\'s bytes in flight: reservations fit under the limit, and one is always granted when nothing is held', async t => {
  const budget = new ByteBudget(100)
  t.ok(budget.tryTake(60))
  t.notOk(budget.tryTake(60), 'past the limit while something is held')
  budget.release(50) // the first answer held only 10 of the 60 it reserved
  t.ok(budget.tryTake(60))
  t.equal(budget.held, 70)
  budget.release(70)
  t.ok(budget.tryTake(500), 'alone, even an oversized reservation goes: the job must make progress')
  t.notOk(budget.tryTake(1))
})

t.test('records past UPSTREAM_MAX_RECORD_BYTES are refused, counted in UTF-8 bytes', async t => {
  checkRecordSizes(['{"a":1}', Buffer.from('{"b":2}')], 10)
  t.throws(() => checkRecordSizes(['{"a":"éééé"}'], 10), { code: 'upstream_response_too_large', message: /A record of 16 bytes/ })
  t.throws(() => checkRecordSizes([Buffer.alloc(11)], 10), { code: 'upstream_response_too_large' })
})
