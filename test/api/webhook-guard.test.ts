/**
 * The webhook route on the internet: it exists only for a configured upstream; a delivery without a well-formed
 * signature header, or announcing a body over the upstream's limit, is refused before its body is read; refused
 * deliveries are limited per source address (the client's, behind a trusted proxy), accepted ones never.
 */
import { connect } from 'node:net'
import t from 'tap'
import { signWebhook } from '../../src/upstreams/metriport/signature.js'
import { MAX_WEBHOOK_BYTES } from '../../src/upstreams/metriport/webhook.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'

const WEBHOOK_KEY = 'guard-test-webhook-key'
const metriport = { METRIPORT_BASE_URL: 'http://127.0.0.1:9', METRIPORT_API_KEY: 'guard-test-api-key', METRIPORT_WEBHOOK_KEY: WEBHOOK_KEY }
const MiB = 1024 * 1024

/**
 * Sends `head` and then `body` chunk by chunk, and returns everything the gateway answered by the time it closed
 * the connection. With `stopAfter`, only that many chunks are ever sent: a gateway that waits for the whole body
 * answers only when its request timeout ends the wait (408), never the early refusal this file looks for.
 */
async function rawPost (gw: TestGateway, head: string, chunk: Buffer, chunks: number, stopAfter = chunks): Promise<{
  status: number,
  head: string,
  body: string,
}> {
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
  const received: Buffer[] = []
  socket.on('data', data => received.push(data))
  socket.on('error', () => {}) // the gateway may close while we still write: its answer is what counts
  const closed = new Promise(resolve => socket.on('close', resolve))
  socket.write(head)
  for (let i = 0; i < stopAfter && !socket.destroyed; i++) {
    if (!socket.write(chunk)) await Promise.race([new Promise(resolve => socket.once('drain', resolve)), closed])
  }
  await closed
  const text = Buffer.concat(received).toString('utf8')
  return { status: Number(text.slice(9, 12)), head: text.slice(0, text.indexOf('\r\n\r\n')), body: text.slice(text.indexOf('\r\n\r\n') + 4) }
}

const headOf = (length: number | 'chunked', extra = '') =>
  `POST /webhooks/metriport HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}` +
  (length === 'chunked' ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${length}\r\n`) + '\r\n'

t.test('a webhook route exists only for a configured upstream, and the document lists it', async t => {
  const bare = await startGateway(t, { startWorkers: false })
  const refused = await bare.request('/webhooks/metriport', { key: null, method: 'POST', body: '{}' })
  t.equal(refused.status, 404)
  t.match(await refused.json(), { code: 'route_not_found' }, 'Metriport not configured: no route')
  t.same(Object.keys(bare.app.swagger().paths ?? {}).filter(p => p.startsWith('/webhooks')), [], 'and no webhook path in its document')

  const configured = await startGateway(t, { startWorkers: false, env: metriport })
  t.same(Object.keys(configured.app.swagger().paths ?? {}).filter(p => p.startsWith('/webhooks')), ['/webhooks/metriport'], 'one static path per configured webhook upstream')
  const nope = await configured.request('/webhooks/nope', { key: null, method: 'POST', body: '{}' })
  t.match(await nope.json(), { code: 'route_not_found' }, 'an upstream without webhooks has no route either')
})

t.test('refused from the headers, before the body is read', async t => {
  // A gateway that waited for the bodies below would answer 408 once this timeout ended its wait.
  const gw = await startGateway(t, { startWorkers: false, env: { ...metriport, REQUEST_TIMEOUT_SECONDS: '3', WEBHOOK_FAILURE_LIMIT: '0' } })
  const chunk = Buffer.alloc(64 * 1024, 32)

  const unsigned = await rawPost(gw, headOf(MiB), chunk, 16, 1)
  t.equal(unsigned.status, 401, 'no signature header: 401 with 64 KiB of the 1 MiB sent')
  t.match(JSON.parse(unsigned.body), { code: 'webhook_signature_invalid', status: 401 })
  t.match(unsigned.head, /content-type: application\/problem\+json/i)
  t.match(unsigned.head, /connection: close/i, 'and the connection closes, taking the unread body with it')

  const malformed = await rawPost(gw, headOf(MiB, 'X-Metriport-Signature: not-a-hex-hmac\r\n'), chunk, 16, 1)
  t.equal(malformed.status, 401, 'a malformed signature header: 401 the same way')
  t.match(JSON.parse(malformed.body), { code: 'webhook_signature_invalid' })

  const wellFormed = `X-Metriport-Signature: ${'ab'.repeat(32)}\r\n`
  const announced = await rawPost(gw, headOf(MAX_WEBHOOK_BYTES + 1, wellFormed), chunk, 200, 1)
  t.equal(announced.status, 413, 'a body announced over the limit: 413 from Content-Length')
  t.match(JSON.parse(announced.body), { code: 'body_too_large' })

  const chunked = await rawPost(gw, headOf('chunked', wellFormed), Buffer.concat([Buffer.from(`${MiB.toString(16)}\r\n`), Buffer.alloc(MiB, 32), Buffer.from('\r\n')]), 12)
  t.equal(chunked.status, 413, `a chunked body over the limit (${MAX_WEBHOOK_BYTES} bytes): 413 once it passes it`)
  t.match(JSON.parse(chunked.body), { code: 'body_too_large' })

  t.equal((await gw.request('/health/live', { key: null })).status, 200, 'the gateway is unaffected')
})

t.test('refused deliveries are limited per address; accepted ones never', async t => {
  const gw = await startGateway(t, {
    startWorkers: false,
    env: { ...metriport, WEBHOOK_FAILURE_LIMIT: '3', WEBHOOK_FAILURE_WINDOW_SECONDS: '600', TRUST_PROXY: '127.0.0.1', RATE_LIMIT_ANONYMOUS_MAX: '2' },
  })
  const post = (from: string, body: string, signature: string | null, path = '/webhooks/metriport') => gw.request(path, {
    key: null, method: 'POST', body, headers: { 'x-forwarded-for': from, ...(signature === null ? {} : { 'x-metriport-signature': signature }) },
  })
  const ping = (i: number) => JSON.stringify({ ping: `p-${i}`, meta: { messageId: `m-${i}`, type: 'ping' } })
  const A = '203.0.113.10'
  const B = '203.0.113.20'

  for (let i = 0; i < 6; i++) {
    t.equal((await post(A, ping(i), signWebhook(ping(i), WEBHOOK_KEY))).status, 200, `signed ping ${i}: accepted, counted nowhere (the request limit is 2)`)
  }
  const notJson = '{"meta":'
  for (let i = 0; i < 4; i++) {
    const res = await post(A, notJson, signWebhook(notJson, WEBHOOK_KEY))
    t.equal(res.status, 400, `signed but malformed ${i}: 400, not counted (only the key holder can send it)`)
  }
  for (let i = 0; i < 3; i++) {
    const res = await post(A, ping(i), signWebhook(ping(i), 'not-the-key'))
    t.equal(res.status, 401, `wrong signature ${i + 1} of 3: 401`)
  }
  const limited = await post(A, ping(9), signWebhook(ping(9), WEBHOOK_KEY))
  t.equal(limited.status, 429, 'after 3 refusals the address is limited, even for a signed delivery (nothing of it is read)')
  t.equal(limited.headers.get('content-type'), 'application/problem+json; charset=utf-8')
  t.match(await limited.json(), { code: 'rate_limited', status: 429 })
  t.ok(Number(limited.headers.get('retry-after')) > 0 && Number(limited.headers.get('retry-after')) <= 600, 'Retry-After within the window')
  t.equal((await post(A, 'x', null)).status, 429, 'and an unsigned one')

  t.equal((await post(B, ping(1), signWebhook(ping(1), WEBHOOK_KEY))).status, 200, 'another client address behind the proxy is not limited')

  const C = '203.0.113.30'
  const refusedFromHeaders = []
  for (let i = 0; i < 4; i++) refusedFromHeaders.push((await post(C, ping(i), i % 2 === 0 ? null : 'not-hex')).status)
  t.same(refusedFromHeaders, [401, 401, 401, 429], 'refusals from the headers alone (no or a malformed signature) count too')

  // A /webhooks path with no route is not the webhook route: the request limit applies to it as to any path.
  const unknown = []
  for (let i = 0; i < 3; i++) unknown.push((await post(B, '{}', null, '/webhooks/nope')).status)
  t.same(unknown, [404, 404, 429], 'an unknown /webhooks path counts against the address\'s request limit')
})
