/**
 * The Cliniko adapter under every plausible answer where docs/UPSTREAMS.md says UNCONFIRMED: a 429 with or without
 * X-RateLimit-Reset and Retry-After, and a 401 whose body is plain text or JSON. Adapter against the simulator on
 * loopback; each job must end exactly as under the documented behaviour.
 */
import t, { type Test } from 'tap'
import { clinikoAdapter, type ClinikoSettings } from '../../../src/upstreams/cliniko/adapter.js'
import {
  SANDBOX_API_KEY, SANDBOX_USER_AGENT, expectedRecords, startClinikoSimulator, type ClinikoSimulatorOptions, type ClinikoThrottleHeaders,
} from '../../../src/upstreams/cliniko/simulator/index.js'
import { UpstreamClient, type UpstreamClientOptions } from '../../../src/upstreams/http.js'
import type { UpstreamEvent } from '../../../src/contract/upstream-events.js'
import { UpstreamError } from '../../../src/domain/errors.js'
import { fakeJob } from '../../helpers/job-context.js'
import { memoryServices } from '../../../src/upstreams/memory-services.js'

const data = { seed: 11, recordCount: 60 }
const MAX_BACKOFF_MS = 10

async function setup (t: Test, sim: ClinikoSimulatorOptions = {}, settings: Partial<ClinikoSettings> = {}, client: UpstreamClientOptions = {}) {
  const simulator = await startClinikoSimulator({ ...data, ...sim })
  const retries: Array<Extract<UpstreamEvent, { type: 'retry' }>> = []
  const http = new UpstreamClient({
    baseDelayMs: 2, maxDelayMs: MAX_BACKOFF_MS, ...client, onEvent: e => { if (e.type === 'retry') retries.push(e) },
  })
  t.teardown(async () => {
    await http.close()
    await simulator.close()
  })
  const adapter = clinikoAdapter({
    baseUrl: simulator.apiUrl, apiKey: SANDBOX_API_KEY, userAgent: SANDBOX_USER_AGENT, requestsPerMinute: 200, ...settings,
  }, http, memoryServices())
  const get = (path: string, key = SANDBOX_API_KEY) => fetch(`${simulator.apiUrl}${path}`, {
    headers: { authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}`, 'user-agent': SANDBOX_USER_AGENT, accept: 'application/json' },
  })
  return { state: simulator.state, adapter, retries, get }
}

const COMBINATIONS: ClinikoThrottleHeaders[] = [
  { rateLimitReset: true, retryAfter: false },
  { rateLimitReset: true, retryAfter: true },
  { rateLimitReset: false, retryAfter: true },
  { rateLimitReset: false, retryAfter: false },
]

t.test('the simulator sends exactly the 429 headers of its setting', async t => {
  for (const headers of COMBINATIONS) {
    const { state, get } = await setup(t, { throttleHeaders: headers })
    state.throttleNext(1, 1)
    const res = await get('/users')
    t.equal(res.status, 429)
    t.equal(res.headers.has('x-ratelimit-reset'), headers.rateLimitReset, `${JSON.stringify(headers)}: X-RateLimit-Reset`)
    t.equal(res.headers.get('retry-after'), headers.retryAfter ? '1' : null, `${JSON.stringify(headers)}: Retry-After`)
  }
})

t.test('injected 429s under every header combination: the job completes exactly, waiting as the headers say', async t => {
  const params = { per_page: 20 }
  const want = expectedRecords('practitioners', params, data)
  for (const headers of COMBINATIONS) {
    const name = JSON.stringify(headers)
    const { state, adapter, retries } = await setup(t, { throttleHeaders: headers })
    // Retry-After and X-RateLimit-Reset say one second; the backoff alone would wait at most MAX_BACKOFF_MS.
    const throttles = headers.rateLimitReset || headers.retryAfter ? 1 : 3
    state.throttleNext(throttles, 1)
    const job = fakeJob('practitioners', params)
    await adapter.run(job.ctx)
    t.same(job.records(), want, `${name}: exact records`)
    t.equal(state.stats.throttled, throttles, `${name}: every 429 was served`)
    const waits = retries.filter(r => r.reason === '429').map(r => r.delayMs)
    t.equal(waits.length, throttles, `${name}: one retry per 429`)
    if (headers.retryAfter) t.same(waits, [1000], `${name}: Retry-After decides the wait`)
    else if (headers.rateLimitReset) t.ok(waits.every(w => w > MAX_BACKOFF_MS), `${name}: X-RateLimit-Reset decides the wait (${waits})`)
    else t.ok(waits.every(w => w <= MAX_BACKOFF_MS), `${name}: the client's own backoff decides the wait (${waits})`)
  }
})

t.test('the rate limit itself without any header: exponential backoff outlasts the window, jobs complete exactly', async t => {
  const small = { seed: 3, recordCount: 12 }
  // The budget allows far more than the simulator: every page beyond 4 a second meets a bare 429.
  const { state, adapter } = await setup(t,
    { ...small, rateLimit: 4, rateWindowMs: 1000, throttleHeaders: { rateLimitReset: false, retryAfter: false } },
    { requestsPerMinute: 10_000 },
    // 20 retries of this backoff wait over 3 s in all: longer than the window, as the production defaults are than a minute.
    { baseDelayMs: 50, maxDelayMs: 400 })
  const job = fakeJob('businesses', { per_page: 2 })
  await adapter.run(job.ctx)
  t.same(job.records(), expectedRecords('businesses', {}, small), 'exact records')
  t.ok(state.stats.rateLimited > 0, `${state.stats.rateLimited} requests met the limit`)
})

t.test('a 401 fails with upstream_unauthorized whether its body is text or JSON, and the message never quotes it', async t => {
  for (const body of ['text', 'json'] as const) {
    const { state, adapter, get } = await setup(t, { unauthorizedBody: body }, { apiKey: 'c29tZW9uZUVsc2U-au1' })
    const raw = await get('/users', 'c29tZW9uZUVsc2U-au1')
    t.equal(raw.status, 401)
    t.match(raw.headers.get('content-type'), body === 'json' ? /^application\/json/ : /^text\/plain/, `${body}: the simulator's 401 body`)
    const sent = await raw.text()
    state.reset()

    const err = await adapter.run(fakeJob('patients', {}).ctx).catch((e: unknown) => e)
    t.ok(err instanceof UpstreamError, `${body}: an UpstreamError`)
    t.match(err, { code: 'upstream_unauthorized', upstreamStatus: 401 }, `${body}: upstream_unauthorized`)
    const message = (err as Error).message
    for (const piece of ['Unauthorized', 'Access denied', 'message', sent.trim()]) t.notMatch(message, piece, `${body}: "${piece}" is not in the message`)
    t.notMatch(message, 'c29tZW9uZUVsc2U', `${body}: nor is the key`)
    t.equal(state.stats.unauthorized, 1, `${body}: a 401 is not retried`)
  }
})
