/**
 * Every problem carries a stable `code` and the `type` URI naming it (docs/API.md, Extensions), from the one list in
 * src/api/problem-codes.ts, which docs/API.md documents: each client error the gateway can be driven to is
 * produced here over real HTTP and checked against that list. Also: request logs hold no query string, and a
 * failure's stack is logged only at debug.
 */
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import { PROBLEM_TYPES, problemTypeUri, type ProblemCode } from '../../src/api/problem-codes.js'
import { registerProblemHandlers } from '../../src/api/problem.js'
import { createLogger } from '../../src/logger.js'
import { startGateway, type TestResponse } from '../helpers/gateway.js'

t.test('docs/API.md lists exactly the problem codes the code has, with their status and meaning', async t => {
  const readme = await readFile(new URL('../../docs/API.md', import.meta.url), 'utf8')
  const rows = [...readme.matchAll(/^\| (\d{3}) \| `([a-z_]+)` \| (.+) \|$/gm)].map(([, status, code, meaning]) => [code, { status: Number(status), meaning }])
  const expected = Object.entries(PROBLEM_TYPES).map(([code, { status, meaning }]) => [code, { status, meaning }])
  t.same(Object.fromEntries(rows), Object.fromEntries(expected))
})

/** An answer as the checks read it. */
interface Answer { status: number, body: string, contentType?: string | null }

/** Sends raw bytes and returns the status line and body of the answer (for requests fetch will not send). */
async function raw (url: string, request: string): Promise<Answer> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  socket.write(request)
  const chunks: Buffer[] = []
  for await (const chunk of socket) chunks.push(chunk as Buffer)
  const text = Buffer.concat(chunks).toString('utf8')
  return { status: Number(text.slice(9, 12)), body: text.slice(text.indexOf('\r\n\r\n') + 4) }
}

t.test('every client error answers its code, the type naming it, and the code\'s status', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { RATE_LIMIT_ANONYMOUS_MAX: '2' } })
  const seen = new Set<ProblemCode>()
  const check = async (name: string, answer: TestResponse | Answer, code: ProblemCode): Promise<void> => {
    const res = 'headers' in answer ? { status: answer.status, body: await answer.text(), contentType: answer.headers.get('content-type') } : answer
    const problem = JSON.parse(res.body)
    if (res.contentType !== undefined) t.equal(res.contentType, 'application/problem+json; charset=utf-8', `${name}: problem+json`)
    t.match(problem, { type: problemTypeUri(code), code, status: PROBLEM_TYPES[code].status, title: PROBLEM_TYPES[code].title, detail: String }, `${name}: ${code}`)
    t.equal(res.status, PROBLEM_TYPES[code].status, `${name}: status ${PROBLEM_TYPES[code].status}`)
    seen.add(code)
  }
  const post = (body: string, headers: Record<string, string> = {}) => gw.request('/jobs', { method: 'POST', body, headers })

  await check('a bad param', await post(JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { since: 'x' } })), 'validation_failed')
  await check('a query value no job can have', await gw.request('/jobs?status=nope'), 'validation_failed')
  await check('JSON that does not parse', await post('{"upstream":'), 'malformed_request')
  await check('an undecodable path', await gw.request('/jobs/%E0%A4%A'), 'malformed_request')
  await check('a list cursor not given out', await gw.request('/jobs?cursor=bm9wZQ'), 'invalid_cursor')
  await check('no key', await gw.request('/jobs', { key: null }), 'unauthorized')
  await check('a wrong key', await gw.request('/jobs', { key: 'not-a-key-at-all' }), 'unauthorized')
  await check('an unknown job', await gw.request('/jobs/00000000-0000-4000-8000-000000000000'), 'job_not_found')
  await check('an unknown route', await gw.request('/nowhere'), 'route_not_found')
  await check('a callback while CALLBACK_ALLOWED_ORIGINS is empty',
    await post(JSON.stringify({ upstream: 'drchrono', resource: 'patients', callback: { url: 'https://hooks.example.com/x' } })), 'callback_origin_not_allowed')
  await check('a path parameter too long', await gw.request(`/jobs/${'a'.repeat(101)}`), 'uri_too_long')
  await check('a body that is not JSON', await post('upstream=drchrono', { 'content-type': 'application/xml' }), 'unsupported_media_type')
  await check('a body over the limit, refused from Content-Length', await raw(gw.url,
    `POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alpha-key-0123456789\r\nContent-Type: application/json\r\nContent-Length: ${2 ** 30}\r\nConnection: close\r\n\r\n{`), 'body_too_large')
  await check('headers too large', await raw(gw.url, `GET /jobs HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\nConnection: close\r\n\r\n`), 'headers_too_large')
  await check('a request that is not HTTP', await raw(gw.url, 'HELLO\r\n\r\n'), 'malformed_request')

  const job = await (await post(JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: {} }), { 'idempotency-key': 'k1' })).json()
  await check('a reused idempotency key', await post(JSON.stringify({ upstream: 'drchrono', resource: 'appointments', params: {} }), { 'idempotency-key': 'k1' }), 'idempotency_key_reused')
  await check('results of a queued job', await gw.request(`/jobs/${job.id}/results`), 'results_not_ready')
  await gw.request(`/jobs/${job.id}`, { method: 'DELETE' })
  await check('results of a cancelled job', await gw.request(`/jobs/${job.id}/results`), 'results_expired')
  await check('a webhook for an upstream that is not configured: no such route', await gw.request('/webhooks/metriport', { method: 'POST', body: '{}' }), 'route_not_found')

  const anonymous = async () => gw.request('/openapi.json', { key: null })
  await anonymous()
  await anonymous()
  await check('over the anonymous rate limit', await anonymous(), 'rate_limited')

  t.comment(`codes produced over HTTP: ${seen.size} of ${Object.keys(PROBLEM_TYPES).length}; not here: ${Object.keys(PROBLEM_TYPES).filter(c => !seen.has(c as ProblemCode)).join(', ')}`)
})

t.test('request logs hold the path, never the query string', async t => {
  const gw = await startGateway(t, { startWorkers: false })
  const marker = 'Jane-Q-Marker-19700101'
  await gw.request(`/jobs?cursor=${marker}&status=${marker}`)
  await gw.request(`/nowhere?name=${marker}`)
  const lines = gw.logs.join('')
  t.ok(lines.includes('"url":"/jobs"'), 'the path is logged')
  t.notOk(lines.includes(marker), 'no query value')
})

t.test('a failure\'s stack is logged at debug only', async t => {
  const run = async (level: 'info' | 'debug'): Promise<{ logs: string, body: string }> => {
    const logs: string[] = []
    const sink = new Writable({ write (chunk: Buffer, _enc, done) { logs.push(chunk.toString('utf8')); done() } })
    const app = Fastify({ loggerInstance: createLogger({ LOG_LEVEL: level }, sink) })
    registerProblemHandlers(app as unknown as FastifyInstance)
    app.get('/fail', async () => { throw new Error('the database said no') })
    const res = await app.inject({ url: '/fail' })
    await app.close()
    return { logs: logs.join(''), body: res.body }
  }
  const info = await run('info')
  t.ok(info.logs.includes('the database said no'), 'at info: what failed')
  t.notOk(info.logs.includes('"stack"'), 'at info: no stack')
  t.match(JSON.parse(info.body), { code: 'internal_error', status: 500 })
  t.notOk(info.body.includes('database said no'), 'the client hears nothing of it')
  const debug = await run('debug')
  t.ok(debug.logs.includes('"stack"'), 'at debug: the stack')
})
