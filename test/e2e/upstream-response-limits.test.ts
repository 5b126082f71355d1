/**
 * The limits on upstream answers through the whole gateway, set by their variables: a record past
 * UPSTREAM_MAX_RECORD_BYTES, a page past UPSTREAM_MAX_RESPONSE_BYTES and a body trickling past
 * UPSTREAM_REQUEST_DEADLINE_SECONDS each fail their job with a stable code. Cliniko is a hand-written server on
 * loopback whose resources each misbehave one way, and which counts what it sent.
 */
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { startGateway, waitForJob } from '../helpers/gateway.js'

const MiB = 1024 * 1024
const envelope = (key: string, records: string[]): string =>
  `{"${key}":[${records.join(',')}],"total_entries":${records.length},"links":{"self":"http://x/"}}`

function flood (res: ServerResponse, total: number, seen: { sent: number }): void {
  const piece = Buffer.from(`{"id":"1","pad":"${'p'.repeat(64 * 1024)}"},`)
  let closed = false
  res.on('close', () => { closed = true })
  res.writeHead(200, { 'content-type': 'application/json' })
  res.write('{"practitioners":[')
  const more = (): void => {
    while (!closed && seen.sent < total) {
      seen.sent += piece.length
      if (!res.write(piece)) { res.once('drain', more); return }
    }
    if (!closed) res.end('{"id":"2"}],"total_entries":2,"links":{"self":"http://x/"}}')
  }
  more()
}

t.test('records, pages and slow bodies past their limits fail jobs with stable codes', async t => {
  const seen = { sent: 0, trickled: 0, requests: {} as Record<string, number> }
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    seen.requests[path] = (seen.requests[path] ?? 0) + 1
    if (path.endsWith('/patients')) {
      // A normal page with one record of 100 KB among small ones.
      res.writeHead(200, { 'content-type': 'application/json' })
        .end(envelope('patients', ['{"id":"1"}', `{"id":"2","notes":"${'n'.repeat(100_000)}"}`, '{"id":"3"}']))
    } else if (path.endsWith('/practitioners')) {
      flood(res, 48 * MiB, seen)
    } else if (path.endsWith('/businesses')) {
      // A byte every 50 ms, each well within the per-read timeout: 25 s in all, if nobody stops it.
      const body = envelope('businesses', [`{"id":"1","name":"${' '.repeat(420)}"}`])
      res.writeHead(200, { 'content-type': 'application/json' })
      let i = 0
      const timer = setInterval(() => {
        if (i === body.length) { clearInterval(timer); res.end(); return }
        res.write(body[i++])
        seen.trickled++
      }, 50)
      res.on('close', () => clearInterval(timer))
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end(envelope(path.split('/').pop() ?? 'x', ['{"id":"1"}']))
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  const gw = await startGateway(t, {
    env: {
      CLINIKO_API_KEY: 'test-key',
      CLINIKO_USER_AGENT: 'Tests (tests@example.org)',
      CLINIKO_BASE_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
      UPSTREAM_MAX_RECORD_BYTES: String(64 * 1024),
      UPSTREAM_MAX_RESPONSE_BYTES: `cliniko:${MiB}`,
      // Long enough for the other answers on a busy machine, far shorter than the trickle.
      UPSTREAM_REQUEST_DEADLINE_SECONDS: '2',
    },
  })
  const submit = async (resource: string): Promise<string> => {
    const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'cliniko', resource, params: {} }) })
    t.equal(res.status, 202, `${resource} accepted`)
    return (await res.json()).id
  }
  const [record, page, slow, fine] = await Promise.all(['patients', 'practitioners', 'businesses', 'services'].map(submit))

  const big = await waitForJob(gw, record as string)
  t.match(big, { status: 'failed', error: { code: 'upstream_response_too_large', message: /UPSTREAM_MAX_RECORD_BYTES/ } }, 'a 100 KB record in a normal page')
  t.equal((await gw.request(`/jobs/${record}`)).status, 200)
  t.equal(big.progress?.records ?? 0, 0, 'nothing of that page stored')

  const flooded = await waitForJob(gw, page as string)
  t.match(flooded, { status: 'failed', error: { code: 'upstream_response_too_large', message: /limit of 1048576 bytes \(UPSTREAM_MAX_RESPONSE_BYTES\)/ } })
  t.equal(seen.requests['/v1/practitioners'], 1, 'too large once is too large again: not retried')
  t.ok(seen.sent < 16 * MiB, `the page stopped being read at the limit (${seen.sent} of 48 MiB sent)`)

  const trickled = await waitForJob(gw, slow as string)
  t.match(trickled, { status: 'failed', error: { code: 'upstream_timeout' } })
  t.ok((seen.requests['/v1/businesses'] ?? 0) > 1, 'a deadline is retried like any timeout')

  t.match(await waitForJob(gw, fine as string), { status: 'completed' }, 'answers within the limits pass')
})
