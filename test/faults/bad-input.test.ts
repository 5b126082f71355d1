/**
 * Fault campaign, bad input: property-based fuzzing (fast-check, fixed seeds printed below) of everything a
 * client or an upstream can send: POST /jobs bodies and headers, GET /jobs query strings and cursors, results
 * limits and cursors, job ids, and Metriport webhook deliveries. Every refusal must be a 4xx problem+json naming
 * the wrong field where there is one, nothing may be a 5xx, and the gateway stays ready afterwards.
 *
 * The oracle for POST /jobs is the body's own schema (the one the route validates with): a body it accepts
 * must be accepted (202/200), one it refuses must be a 400 problem naming a field on the mutated path.
 */
import fc from 'fast-check'
import t from 'tap'
import { jobRequestSchema } from '../../src/api/job-request.js'
import { startDrchronoSimulator } from '../../src/upstreams/drchrono/simulator/index.js'
import { SANDBOX_CREDENTIALS as METRIPORT_CREDENTIALS } from '../../src/upstreams/metriport/env.js'
import { SIGNATURE_HEADER, signWebhook } from '../../src/upstreams/metriport/signature.js'
import { DOCUMENT_URLS_TYPE } from '../../src/upstreams/metriport/webhook.js'
import { registry } from '../../src/upstreams/registry.js'
import { drchronoEnv } from '../helpers/drchrono.js'
import { clientKeys, startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'
import {
  URL_TOO_LONG, junk, nastyNumber, nastyString, poisoned, problemIssue, segment, type Problem,
} from './bad-input-arbitraries.js'
import { CAMPAIGN_SEED, Tally } from './campaign.js'
import { RUNS, check, fuzzJobBodies } from './job-body-fuzz.js'

const schema = jobRequestSchema(registry.upstreams)

async function ready (gw: TestGateway): Promise<number> {
  return (await fetch(`${gw.url}/health/ready`)).status
}

t.test('bad input never gets a 5xx: 4xx problem+json naming the field, and the gateway stays ready', async t => {
  t.comment(`seed ${CAMPAIGN_SEED} (set FAULT_SEED to replay another), ${RUNS} runs per property (FAULT_RUNS)`)
  const sim = await startDrchronoSimulator({ seed: 7, inProgressPolls: 0, recordCount: { appointments: 120 } })
  t.teardown(() => sim.close())
  const gw = await startGateway(t, {
    logLevel: 'warn',
    env: {
      ...drchronoEnv(sim),
      DRCHRONO_POLL_INTERVAL_MS: '10',
      METRIPORT_BASE_URL: sim.url,
      METRIPORT_API_KEY: METRIPORT_CREDENTIALS.apiKey,
      METRIPORT_WEBHOOK_KEY: METRIPORT_CREDENTIALS.webhookKey,
      // Thousands of unsigned deliveries from one address: each must get its 401, not the failure limit's 429.
      WEBHOOK_FAILURE_LIMIT: '0',
      // The fuzzer is one client sending thousands of requests: the rate limit would answer most of them.
      RATE_LIMIT_MAX: '0',
      RATE_LIMIT_ANONYMOUS_MAX: '0',
      // Its valid bodies stay queued (the worker is stopped below): hundreds of active jobs for one client.
      MAX_ACTIVE_JOBS_PER_CLIENT: '0',
    },
  })
  // One completed job whose results the results fuzzer reads; then the worker stops, so fuzzed jobs stay queued.
  const done = await (await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'appointments', params: { page_size: 50 } }) })).json() as { id: string }
  const completed = await waitForJob(gw, done.id)
  t.equal(completed.status, 'completed', 'a completed job to read results from')
  await gw.app.worker.stop()

  const tally = new Tally('bad-input')
  const unescaped: string[] = []
  const seed = (k: number) => CAMPAIGN_SEED + k

  await fuzzJobBodies(t, gw, registry, { tally, seeds: [seed(1), seed(7)], unescaped })

  await check(t, tally, 'POST /jobs, not a job at all', seed(2), fc.oneof(
    fc.jsonValue({ maxDepth: 4 }).map(v => ({ body: JSON.stringify(v), type: 'application/json' })),
    fc.string({ unit: 'binary', maxLength: 200 }).map(s => ({ body: s, type: 'application/json' })),
    fc.constantFrom('{"upstream":', '{', '[', '"', '{"a":1}}', '\u0000', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', '\ufeff{}')
      .map(s => ({ body: s, type: 'application/json' })),
    fc.nat(20_000).map(n => ({ body: '['.repeat(n) + ']'.repeat(n), type: 'application/json' })),
    fc.record({ body: fc.string({ maxLength: 100 }), type: fc.constantFrom('text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', '') })
  ), async ({ body, type }) => {
    const res = await gw.request('/jobs', { method: 'POST', body, headers: { 'content-type': type } })
    const text = await res.text()
    let parsed: unknown = Symbol('not JSON')
    try { parsed = JSON.parse(body) } catch { /* not JSON */ }
    if (type === 'application/json' && schema.safeParse(parsed).success && !poisoned(body)) {
      if (res.status !== 202 && res.status !== 200) throw new Error(`a valid body answered ${res.status}`)
      return
    }
    const issue = problemIssue(res, text)
    if (issue !== null) throw new Error(issue)
  })

  t.same(unescaped.slice(0, 5), [], 'error pointers are RFC 6901 JSON pointers (a key\'s ~ and / escaped as ~0 and ~1)')

  const cursorOf = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const listCursor = fc.oneof(
    nastyString,
    fc.record({ t: fc.oneof(fc.date({ noInvalidDate: true }).map(d => d.toISOString()), nastyString), id: fc.oneof(fc.uuid(), nastyString) }).map(cursorOf),
    fc.jsonValue({ maxDepth: 2 }).map(cursorOf)
  )
  await check(t, tally, 'GET /jobs query strings', seed(3), fc.dictionary(
    fc.oneof(fc.constantFrom('limit', 'cursor', 'status', 'upstream'), nastyString),
    fc.oneof(nastyString, nastyNumber.map(String), listCursor, fc.constantFrom('queued', 'completed', 'drchrono', '20', '100', '101', '0')),
    { maxKeys: 4 }
  ), async query => {
    const qs = new URLSearchParams(query).toString()
    const res = await gw.request(`/jobs?${qs}`)
    const text = await res.text()
    if (res.status === 200) return
    const issue = problemIssue(res, text, [400, ...URL_TOO_LONG])
    if (issue !== null) throw new Error(`?${qs.slice(0, 200)}: ${issue}`)
    const errors = (JSON.parse(text) as Problem).errors ?? []
    if (res.status === 400 && !errors.some(e => e.in === 'query')) throw new Error(`?${qs.slice(0, 200)}: a 400 naming no query field`)
  })

  const position = fc.oneof(fc.nat(1000), nastyNumber, fc.constantFrom(2 ** 31 - 1, 2 ** 31, 2 ** 53, -1))
  await check(t, tally, 'GET /jobs/{id}/results limit and cursor', seed(4), fc.record({
    limit: fc.option(fc.oneof(nastyNumber.map(String), nastyString, fc.constantFrom('1', '1000', '1001', '0')), { nil: undefined }),
    cursor: fc.option(fc.oneof(nastyString, fc.tuple(position, position).map(cursorOf), fc.jsonValue({ maxDepth: 2 }).map(cursorOf)), { nil: undefined }),
    accept: fc.constantFrom(undefined, 'application/json', 'application/x-ndjson', 'application/x-ndjson;q=0', '*/*', 'text/html', 'application/x-ndjson;q=abc'),
  }), async ({ limit, cursor, accept }) => {
    const qs = new URLSearchParams({ ...(limit !== undefined ? { limit } : {}), ...(cursor !== undefined ? { cursor } : {}) }).toString()
    const res = await gw.request(`/jobs/${done.id}/results?${qs}`, { headers: accept === undefined ? {} : { accept } })
    const text = await res.text()
    if (res.status === 200) return
    const issue = problemIssue(res, text, [400, ...URL_TOO_LONG])
    if (issue !== null) throw new Error(`?${qs.slice(0, 200)}: ${issue}`)
    const errors = (JSON.parse(text) as Problem).errors ?? []
    if (res.status === 400 && !errors.some(e => e.in === 'query' && ['/limit', '/cursor'].includes(e.pointer))) throw new Error(`?${qs.slice(0, 200)}: a 400 naming neither limit nor cursor`)
  })

  await check(t, tally, 'job ids', seed(5), fc.record({
    id: fc.oneof(fc.uuid(), nastyString, fc.stringMatching(/^[0-9a-fA-F-]{1,40}$/)).filter(id => id !== '' && id !== '.' && id !== '..'),
    route: fc.constantFrom('GET /jobs/{id}', 'DELETE /jobs/{id}', 'GET /jobs/{id}/results'),
    key: fc.constantFrom(clientKeys.alpha, clientKeys.beta),
  }), async ({ id, route, key }) => {
    const [method, path] = route.split(' ') as [string, string]
    const res = await gw.request(path.replace('{id}', segment(id)), { method, key })
    const issue = problemIssue(res, await res.text(), [404, ...URL_TOO_LONG])
    if (issue !== null) throw new Error(`${method} ${id.slice(0, 60)}: ${issue}`)
  })

  const webhookKey = METRIPORT_CREDENTIALS.webhookKey
  // Mostly the message type that reaches the database, with ids of every kind.
  const id = fc.oneof({ arbitrary: fc.uuid(), weight: 2 }, { arbitrary: nastyString, weight: 2 }, { arbitrary: fc.constantFrom('a\u0000b', '\u0000'), weight: 1 }, { arbitrary: junk, weight: 1 })
  const metriportMessage = fc.record({
    meta: fc.record({
      type: fc.oneof({ arbitrary: fc.constant(DOCUMENT_URLS_TYPE), weight: 4 }, fc.constantFrom('ping', 'medical.document-download'), nastyString, junk),
      messageId: id,
      requestId: id,
      when: fc.oneof(fc.date({ noInvalidDate: true }).map(d => d.toISOString()), nastyString),
    }, { requiredKeys: [] }),
    ping: fc.oneof(nastyString, junk),
    patients: fc.oneof(junk, fc.array(fc.record({
      patientId: fc.oneof(fc.uuid(), nastyString, junk),
      status: fc.oneof(fc.constantFrom('completed', 'failed', 'processing'), junk),
      documents: fc.oneof(junk, fc.array(fc.oneof(junk, fc.dictionary(nastyString, junk, { maxKeys: 5 })), { maxLength: 4 })),
    }, { requiredKeys: [] }), { maxLength: 3 })),
  }, { requiredKeys: [] })
  await check(t, tally, 'POST /webhooks/metriport deliveries', seed(6), fc.oneof(
    metriportMessage.map(m => ({ body: JSON.stringify(m), signed: true, upstream: 'metriport' })),
    fc.jsonValue({ maxDepth: 3 }).map(v => ({ body: JSON.stringify(v), signed: true, upstream: 'metriport' })),
    fc.string({ unit: 'binary', maxLength: 200 }).map(s => ({ body: s, signed: true, upstream: 'metriport' })),
    metriportMessage.map(m => ({ body: JSON.stringify(m), signed: false, upstream: 'metriport' })),
    fc.record({ body: fc.string({ maxLength: 50 }), signed: fc.boolean(), upstream: nastyString.filter(s => s !== 'metriport' && s !== '' && s !== '.' && s !== '..') })
  ), async ({ body, signed, upstream }) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (signed) headers[SIGNATURE_HEADER] = signWebhook(body, webhookKey)
    const res = await fetch(`${gw.url}/webhooks/${segment(upstream)}`, { method: 'POST', body, headers })
    const text = await res.text()
    if (upstream !== 'metriport') {
      // No such route (webhook routes exist only per configured upstream); as on any unknown path, a body that
      // cannot be read (empty JSON) may be refused (400) before the 404.
      const issue = problemIssue(res, text, [404, 400, ...URL_TOO_LONG])
      if (issue !== null) throw new Error(`/webhooks/${upstream.slice(0, 40)}: ${issue}`)
      return
    }
    if (res.status === 200) {
      const ack = JSON.parse(text) as unknown
      if (typeof ack !== 'object' || ack === null || Array.isArray(ack)) throw new Error(`a 200 acknowledgement that is not a JSON object: ${text.slice(0, 100)}`)
      return
    }
    const issue = problemIssue(res, text, [signed ? 400 : 401])
    if (issue !== null) throw new Error(`${body.slice(0, 120)}: ${issue}`)
  })

  // A delivery whose ids PostgreSQL cannot store (NUL) was a 500; now a 400, like any unusable id.
  for (const [field, value] of [['messageId', 'a\u0000b'], ['requestId', '\u0000']] as const) {
    const body = JSON.stringify({ meta: { type: DOCUMENT_URLS_TYPE, messageId: 'm-nul', requestId: 'r-nul', [field]: value }, patients: [] })
    const res = await fetch(`${gw.url}/webhooks/metriport`, { method: 'POST', body, headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signWebhook(body, webhookKey) } })
    t.equal(problemIssue(res, await res.text(), [400]), null, `a delivery with NUL in meta.${field}: 400 problem`)
  }

  t.equal(await ready(gw), 200, '/health/ready answers 200 after the fuzzing')
  t.equal((await gw.request(`/jobs/${done.id}/results?limit=1`)).status, 200, 'the API still serves results')
  const errors = gw.logs.filter(l => /"level":(50|60)/.test(l)).map(l => (JSON.parse(l) as { msg?: string, err?: { message?: string } }))
  t.same(errors.map(e => `${e.msg ?? ''}: ${e.err?.message?.slice(0, 200) ?? ''}`), [], 'no request failed inside the gateway (an error log means a 500)')
  tally.report(t)
})
