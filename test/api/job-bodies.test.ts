/**
 * POST /jobs bodies: limits by upstream applied while the body arrives, a cap on nesting, and the documented
 * maximum (100 000 Clinia operations) accepted. Timing is not asserted here: that such a body does not block
 * the event loop is measured by `npm run bench` (line 9a).
 */
import net from 'node:net'
import t from 'tap'
import { MAX_BODY_DEPTH, READ_BODY_LIMIT } from '../../src/api/job-body.js'
import { MAX_JOB_OPERATIONS } from '../../src/upstreams/clinia/params.js'
import { sql } from '../helpers/database.js'
import { clientKeys, startGateway, type TestGateway } from '../helpers/gateway.js'

const problemType = 'application/problem+json; charset=utf-8'

// 36 MB bodies, prepared by a worker thread that under tap first compiles its TypeScript: more than tap's 180 s
// default on a machine shared by parallel test files.
t.setTimeout(900_000)

/** A Clinia UPSERT of about 360 bytes, the size of the operations that once took 5.4 s to refuse with a 500. */
function operation (i: number): unknown {
  return {
    action: 'UPSERT',
    upsert: {
      id: `provider-${i}-abcdefghijklmnop`,
      type: 'provider',
      data: { name: `Provider Number ${i} with a long name`, practiceNumber: 1020993 + i, specialities: ['Pharmacist', 'Family medicine'], address: { line: ['1234 Some Street Name'], city: 'Montreal', postalCode: 'H2X 1Y4', country: 'CA' } },
      meta: { createdAt: '2024-01-01T00:00:00Z' },
    },
  }
}

const cliniaBody = (n: number): string => JSON.stringify({ upstream: 'clinia', resource: 'resources', operations: Array.from({ length: n }, (_, i) => operation(i)) })

/** Sends raw bytes (headers and only part of a body) and returns what comes back before the socket closes. */
async function rawPost (gw: TestGateway, headers: string, bodyStart: string): Promise<string> {
  const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
  let response = ''
  socket.on('data', chunk => { response += String(chunk) })
  socket.on('error', () => {})
  const closed = new Promise(resolve => socket.on('close', resolve))
  socket.write(`POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${clientKeys.alpha}\r\nContent-Type: application/json\r\n${headers}Connection: close\r\n\r\n${bodyStart}`)
  await closed
  return response
}

/** `depth` levels of objects in all: the body, then `{"a":…}` down to an empty object. */
const nested = (levels: number): string => '{"a":'.repeat(levels) + '{}' + '}'.repeat(levels)

t.test('the documented maximum: 100 000 Clinia operations are accepted (202) and the job holds them all', async t => {
  const gw = await startGateway(t, { startWorkers: false })
  const body = cliniaBody(MAX_JOB_OPERATIONS)
  t.ok(body.length > 30_000_000, `a body of ${(body.length / 1e6).toFixed(1)} MB`)
  const res = await gw.request('/jobs', { method: 'POST', body })
  t.equal(res.status, 202, 'accepted')
  const job = await res.json()
  t.match(job, { upstream: 'clinia', resource: 'resources', status: 'queued' })
  const [row] = await sql<{ n: number, last: string }>(gw.databaseUrl,
    'SELECT jsonb_array_length(payload->\'operations\') AS n, payload->\'operations\'->-1->\'upsert\'->>\'id\' AS last FROM jobs WHERE id = $1', [job.id])
  t.same(row, { n: MAX_JOB_OPERATIONS, last: `provider-${MAX_JOB_OPERATIONS - 1}-abcdefghijklmnop` }, 'every operation stored, in order')

  const replay = await gw.request('/jobs', { method: 'POST', body: cliniaBody(2000), headers: { 'idempotency-key': 'big-1' } })
  t.equal(replay.status, 202, 'a body prepared in the worker thread, with an Idempotency-Key')
  const again = await gw.request('/jobs', { method: 'POST', body: cliniaBody(2000), headers: { 'idempotency-key': 'big-1' } })
  t.equal(again.status, 200, 'its replay finds the same job: the hash is the same whichever thread computed it')
  t.equal((await again.json()).id, (await replay.json()).id)
})

t.test('a large body with one bad operation: 400 naming it, as for a small body', async t => {
  const gw = await startGateway(t, { startWorkers: false })
  const ops = Array.from({ length: 2000 }, (_, i) => operation(i)) as Array<Record<string, unknown>>
  ops[1234] = { action: 'UPSERT', upsert: { type: 'provider', data: {} } }
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'clinia', resource: 'resources', operations: ops }) })
  t.equal(res.status, 400)
  t.match(await res.json(), { code: 'validation_failed', errors: [{ in: 'body', pointer: '/operations/1234/upsert/id' }] })
})

t.test('limits by upstream, applied while the body arrives', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { REQUEST_TIMEOUT_SECONDS: '10' } })

  // The upstream comes first; the rest of the announced megabyte never does. A read job's limit is known from
  // the first bytes, so the answer comes without waiting for (or buffering) the rest.
  const early = await rawPost(gw, `Content-Length: ${1024 * 1024}\r\n`, '{"upstream":"drchrono","resource":"patients","params":{"doctor":')
  t.match(early, /^HTTP\/1\.1 413 /, 'a read job announcing 1 MiB: 413 at once')
  t.match(early, /"code":"body_too_large"/)
  t.match(early, /drchrono job's body may be at most 64 KiB/)

  const filler = 'x'.repeat(READ_BODY_LIMIT)
  const streamed = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'cliniko', resource: 'patients', params: { q: [filler] } }) })
  t.equal(streamed.status, 413, 'a read job over 64 KiB, sent whole')
  t.equal(streamed.headers.get('content-type'), problemType)

  const upstreamLast = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ params: { q: [filler] }, resource: 'patients', upstream: 'cliniko' }) })
  t.equal(upstreamLast.status, 413, 'the upstream named last: refused all the same, by the bytes outside any payload')

  const writeParams = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'clinia', resource: 'resources', params: { x: filler }, operations: [operation(0)] }) })
  t.equal(writeParams.status, 413, 'a write job too: only its operations may be large')

  const write = await gw.request('/jobs', { method: 'POST', body: cliniaBody(3000) })
  t.equal(write.status, 202, `a Clinia job of ${(cliniaBody(3000).length / 1e6).toFixed(1)} MB is within its limit`)

  const small = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { doctor: 1 } }) })
  t.equal(small.status, 202, 'an ordinary read job')
})

t.test(`nesting beyond ${MAX_BODY_DEPTH} levels: 400 malformed_request, never a 500`, async t => {
  const gw = await startGateway(t, { startWorkers: false })
  const clinia = (levels: number) => `{"upstream":"clinia","resource":"resources","operations":[{"action":"CREATE","create":{"type":"provider","data":${nested(levels)}}}]}`
  for (const levels of [2500, 100_000]) {
    for (const [where, body] of [['Clinia data', clinia(levels)], ['DrChrono params', `{"upstream":"drchrono","resource":"patients","params":${nested(levels)}}`], ['arrays at the root', '['.repeat(levels) + ']'.repeat(levels)]] as const) {
      const res = await gw.request('/jobs', { method: 'POST', body })
      const name = `${levels} levels in ${where}`
      t.equal(res.status, 400, name)
      t.equal(res.headers.get('content-type'), problemType, `${name}: problem+json`)
      t.match(await res.json(), { code: 'malformed_request', detail: /nests deeper than 64 levels/ }, `${name}: malformed_request`)
    }
  }
  t.notOk(gw.logs.some(l => l.includes('"level":50')), 'nothing logged as an error')

  // The body is level 1, operations 2, the operation 3, create 4, data 5: data may hold 59 more levels.
  const atLimit = await gw.request('/jobs', { method: 'POST', body: clinia(MAX_BODY_DEPTH - 5) })
  t.equal(atLimit.status, 202, `a body nested exactly ${MAX_BODY_DEPTH} deep is accepted`)
  const overLimit = await gw.request('/jobs', { method: 'POST', body: clinia(MAX_BODY_DEPTH - 4) })
  t.equal(overLimit.status, 400, 'one level more is not')

  const poisoned = await gw.request('/jobs', { method: 'POST', body: '{"upstream":"drchrono","resource":"patients","params":{},"__proto__":{"x":1}}' })
  t.match(await poisoned.json(), { status: 400, code: 'malformed_request' }, 'a __proto__ key is still refused by the parser')
  const empty = await gw.request('/jobs', { method: 'POST', body: '' })
  t.match(await empty.json(), { status: 400, code: 'malformed_request' }, 'and an empty body')
})
