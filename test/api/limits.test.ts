/**
 * Limits and protection: rate limits per client key and per IP, body size, and the whole-request timeout.
 */
import net from 'node:net'
import t from 'tap'
import { clientKeys, startGateway, type TestGateway } from '../helpers/gateway.js'

const problemType = 'application/problem+json; charset=utf-8'

async function hammer (gw: TestGateway, n: number, path: string, init: Parameters<TestGateway['request']>[1] = {}): Promise<number[]> {
  const statuses: number[] = []
  for (let i = 0; i < n; i++) {
    const res = await gw.request(path, init)
    await res.arrayBuffer()
    statuses.push(res.status)
  }
  return statuses
}

t.test('rate limits: per client key, per IP without one, health exempt', async t => {
  const gw = await startGateway(t, {
    startWorkers: false,
    env: { RATE_LIMIT_MAX: '5', RATE_LIMIT_ANONYMOUS_MAX: '3', RATE_LIMIT_WINDOW_SECONDS: '600' },
  })

  const first = await gw.request('/jobs')
  t.equal(first.status, 200)
  t.equal(first.headers.get('ratelimit-limit'), '5', 'RateLimit-Limit on an allowed request')
  t.equal(first.headers.get('ratelimit-remaining'), '4', 'RateLimit-Remaining counts down')
  t.ok(Number(first.headers.get('ratelimit-reset')) > 0, 'RateLimit-Reset in seconds')

  t.same(await hammer(gw, 4, '/jobs'), [200, 200, 200, 200], 'alpha: the rest of its 5')
  const limited = await gw.request('/jobs')
  t.equal(limited.status, 429, 'the 6th request of alpha is refused')
  t.equal(limited.headers.get('content-type'), problemType, 'as problem+json')
  t.ok(Number(limited.headers.get('retry-after')) > 0, 'with Retry-After in seconds')
  t.equal(limited.headers.get('ratelimit-remaining'), '0', 'and RateLimit-Remaining 0')
  t.match(await limited.json(), { status: 429, title: 'Too Many Requests', detail: /5 requests per 600 s/ })
  t.ok(gw.logs.some(l => l.includes('rate limit exceeded') && l.includes('"limitedBy":"client"')), 'logged, without the key')
  t.notOk(gw.logs.some(l => l.includes(clientKeys.alpha)), 'the key itself is never logged')

  t.equal((await gw.request('/jobs', { key: clientKeys.beta })).status, 200, 'beta has its own budget')

  // Unauthenticated routes and wrong keys count against the IP, with its own (smaller) limit.
  const anonymous = await hammer(gw, 4, '/openapi.json', { key: null })
  t.same(anonymous, [200, 200, 200, 429], 'per IP: 3, then 429')
  t.equal((await gw.request('/jobs', { key: 'wrong-key-123456' })).status, 429, 'guessing keys spends the IP\'s budget')
  t.equal((await gw.request('/jobs', { key: clientKeys.beta })).status, 200, 'a valid key is not held back by its IP')

  t.same(await hammer(gw, 10, '/health/live', { key: null }), Array(10).fill(200), '/health/* is exempt')
  const health = await gw.request('/health/ready', { key: null })
  t.equal(health.headers.get('ratelimit-limit'), null, 'and carries no rate-limit headers')
})

t.test('rate limits key on the client IP that a trusted proxy reports', async t => {
  const gw = await startGateway(t, {
    startWorkers: false,
    env: { RATE_LIMIT_ANONYMOUS_MAX: '2', RATE_LIMIT_WINDOW_SECONDS: '600', TRUST_PROXY: '127.0.0.1' },
  })
  const from = (ip: string) => ({ key: null, headers: { 'x-forwarded-for': ip } })
  t.same(await hammer(gw, 3, '/openapi.json', from('203.0.113.7')), [200, 200, 429], 'one client behind the proxy')
  t.same(await hammer(gw, 2, '/openapi.json', from('198.51.100.2')), [200, 200], 'another has its own budget')

  const direct = await startGateway(t, { startWorkers: false, env: { RATE_LIMIT_ANONYMOUS_MAX: '2', RATE_LIMIT_WINDOW_SECONDS: '600' } })
  const spoofed = [...await hammer(direct, 2, '/openapi.json', from('203.0.113.7')), ...await hammer(direct, 1, '/openapi.json', from('198.51.100.9'))]
  t.same(spoofed, [200, 200, 429], 'without TRUST_PROXY a forged X-Forwarded-For changes nothing')
})

t.test('a limit of 0 switches that limit off', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { RATE_LIMIT_MAX: '0', RATE_LIMIT_ANONYMOUS_MAX: '1' } })
  t.same(await hammer(gw, 5, '/jobs'), Array(5).fill(200), 'client requests unlimited')
  t.equal((await gw.request('/jobs')).headers.get('ratelimit-limit'), null, 'and without rate-limit headers')
  t.same(await hammer(gw, 2, '/openapi.json', { key: null }), [200, 429], 'the IP limit still applies')
})

t.test('body too large: 413 problem+json', async t => {
  // Metriport configured: its webhook route exists only then.
  const gw = await startGateway(t, { startWorkers: false, env: { METRIPORT_API_KEY: 'limits-test-api-key', METRIPORT_WEBHOOK_KEY: 'limits-test-webhook-key' } })
  // Announced size over POST /jobs's limit (64 MiB): refused from the headers, before any body is read.
  const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
  let response = ''
  socket.on('data', chunk => { response += String(chunk) })
  const ended = new Promise(resolve => socket.on('close', resolve))
  socket.write(`POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${clientKeys.alpha}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${65 * 1024 * 1024}\r\nConnection: close\r\n\r\n{"upstream":`)
  await ended
  t.match(response, /^HTTP\/1\.1 413 /, '413 from the announced length')
  t.match(response, /content-type: application\/problem\+json/i, 'as problem+json')
  t.match(response, /"status":413/)

  const webhook = await gw.request('/webhooks/metriport', {
    key: null, method: 'POST', headers: { 'content-type': 'application/json', 'x-metriport-signature': 'ab'.repeat(32) }, body: Buffer.alloc(11 * 1024 * 1024, 32),
  })
  t.equal(webhook.status, 413, 'a webhook body over Metriport\'s 10 MiB too (test/api/webhook-guard.test.ts has the rest)')
  t.equal(webhook.headers.get('content-type'), problemType)
})

t.test('a request that does not arrive in time gets 408 problem+json', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { REQUEST_TIMEOUT_SECONDS: '1' } })
  const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
  let response = ''
  socket.on('data', chunk => { response += String(chunk) })
  socket.on('error', () => {})
  const ended = new Promise(resolve => socket.on('close', resolve))
  // Headers, then only part of the body: the rest never comes.
  socket.write(`POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${clientKeys.alpha}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"upstr`)
  await ended
  t.match(response, /^HTTP\/1\.1 408 /, 'the request timeout answers 408 and closes the connection')
  t.match(response, /content-type: application\/problem\+json/i, 'as problem+json')
  t.match(response, /"status":408/)
  t.equal((await gw.request('/health/live', { key: null })).status, 200, 'the gateway is unaffected')
})
