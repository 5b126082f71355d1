import t, { type Test } from 'tap'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { clinikoAdapter, type ClinikoCheckpoint, type ClinikoSettings } from '../../../src/upstreams/cliniko/adapter.js'
import { CLINIKO_RESOURCES, type ClinikoResource } from '../../../src/upstreams/cliniko/params.js'
import {
  SANDBOX_API_KEY, SANDBOX_USER_AGENT, expectedRecords, startClinikoSimulator, type ClinikoSimulatorOptions,
} from '../../../src/upstreams/cliniko/simulator/index.js'
import { UpstreamError } from '../../../src/domain/errors.js'
import { fakeJob } from '../../helpers/job-context.js'
import { memoryServices } from '../../../src/upstreams/memory-services.js'

const SEED = 7
const recordCount = 250

/** A simulator on a loopback port and an adapter pointed at it, with tiny retry waits; all closed at the end. */
async function setup (t: Test, sim: ClinikoSimulatorOptions = {}, settings: Partial<ClinikoSettings> = {}) {
  const simulator = await startClinikoSimulator({ seed: SEED, recordCount, ...sim })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => {
    await client.close()
    await simulator.close()
  })
  const adapter = clinikoAdapter({
    baseUrl: simulator.apiUrl, apiKey: SANDBOX_API_KEY, userAgent: SANDBOX_USER_AGENT, requestsPerMinute: 200, ...settings,
  }, client, memoryServices())
  return { simulator, state: simulator.state, adapter }
}

/** A Cliniko job on the engine's side, in memory (test/helpers/job-context.ts). */
const clinikoJob = (resource: ClinikoResource, params: Record<string, unknown>, checkpoint: ClinikoCheckpoint | null = null) =>
  fakeJob<ClinikoCheckpoint>(resource, params, { checkpoint })

const expected = (resource: ClinikoResource, params: { q?: string[], sort?: string, order?: string } = {}) =>
  expectedRecords(resource, params, { seed: SEED, recordCount })

t.test('a multi-page job stores exactly the served bytes, int64 numbers included, following links.next', async t => {
  const { state, adapter } = await setup(t)
  const params = { per_page: 20 }
  const want = expected('patients')
  const pagesTotal = Math.ceil(want.length / 20)
  t.ok(pagesTotal >= 10, `${pagesTotal} pages`)
  const job = clinikoJob('patients', params)
  await adapter.run(job.ctx)
  t.same(job.records(), want, 'same records, same order, same JSON text')
  t.ok(job.records()[0]?.includes('"legacy_id":9007199254740993123'), 'the bare int64 (beyond 2^53) is byte-identical')
  t.ok(job.records()[0]?.startsWith('{"id":"'), 'ids are int64 strings')
  for (let p = 1; p <= pagesTotal; p++) t.equal(state.pagesServed('patients', p), 1, `page ${p} read once`)
  t.same(job.checkpoints.map(c => c.page), Array.from({ length: pagesTotal }, (_, i) => i + 1))
  t.ok(job.checkpoints.slice(0, -1).every(c => c.next !== null && c.total === want.length), 'every checkpoint but the last names the next link')
  t.same(job.checkpoints.at(-1), { next: null, page: pagesTotal, total: want.length })
  t.same(job.progress.at(-1), { pagesDone: pagesTotal, pagesTotal, percent: 100 })
  t.match(job.progress[0], { pagesDone: 1, pagesTotal, percent: Math.round(1000 / pagesTotal) / 10 })
})

t.test('every resource and list variant, with filters, sort and order', async t => {
  const { adapter } = await setup(t)
  for (const resource of CLINIKO_RESOURCES) {
    const job = clinikoJob(resource, {})
    await adapter.run(job.ctx)
    t.same(job.records(), expected(resource), `${resource}: ${job.records().length} records`)
  }
  const ids = expected('patients').slice(3, 6).map(r => (JSON.parse(r) as { id: string }).id)
  for (const params of [
    { q: ['updated_at:>2024-06-01T00:00:00Z'], sort: 'updated_at:desc' },
    { q: [`id:=${ids.join(',')}`] },
    { q: ['last_name:~an', 'email:?'], sort: 'last_name,first_name', order: 'desc' },
    { q: ['email:!?'] },
    { q: ['archived_at:*'], per_page: 7 },
    { q: ['date_of_birth:=****-05-**'] },
  ]) {
    const job = clinikoJob('patients', params)
    await adapter.run(job.ctx)
    t.same(job.records(), expected('patients', params), JSON.stringify(params))
  }
  const byId = clinikoJob('patients', { q: [`id:=${ids.join(',')}`] })
  await adapter.run(byId.ctx)
  t.equal(byId.records().length, 3, 'an id list selects exactly those records')
  const all = clinikoJob('patients', { q: ['archived_at:*'] })
  await adapter.run(all.ctx)
  t.ok(all.records().length > expected('patients').length, 'archived_at:* also lists archived patients')
})

t.test('resume: a job continues from the stored next link; a finished checkpoint makes no request', async t => {
  const { state, adapter } = await setup(t)
  const want = expected('individual_appointments')
  const first = clinikoJob('individual_appointments', { per_page: 50 })
  await adapter.run(first.ctx)
  const pages = first.checkpoints.length
  t.ok(pages >= 4)
  state.reset()
  const resumed = clinikoJob('individual_appointments', { per_page: 50 }, first.checkpoints[1])
  await adapter.run(resumed.ctx)
  t.same([...resumed.pages.keys()], Array.from({ length: pages - 2 }, (_, i) => i + 3), 'pages 3.. only')
  t.equal(state.pagesServed('individual_appointments', 1) + state.pagesServed('individual_appointments', 2), 0)
  t.same(resumed.records(), want.slice(100), 'the rest, exactly')

  state.reset()
  await adapter.run(clinikoJob('individual_appointments', { per_page: 50 }, first.checkpoints.at(-1)).ctx)
  t.same(state.stats.pages, {}, 'nothing left to read')
})

t.test('a next link that loops, or a page served twice, fails with upstream_pagination_loop', async t => {
  const { state, adapter } = await setup(t)
  state.loopNext(3, 2)
  const loop = clinikoJob('patients', { per_page: 20 })
  await t.rejects(adapter.run(loop.ctx), { code: 'upstream_pagination_loop' })
  t.same([...loop.pages.keys()], [1, 2, 3], 'stopped before reading page 2 again')

  state.reset()
  state.loopNext(2, 1)
  const back = clinikoJob('patients', { per_page: 20 })
  await t.rejects(adapter.run(back.ctx), { code: 'upstream_pagination_loop' }, 'a link back to page 1 counts too')
  t.same([...back.pages.keys()], [1, 2])

  state.reset()
  state.repeatPage(3)
  const repeat = clinikoJob('patients', { per_page: 20 })
  await t.rejects(adapter.run(repeat.ctx), { code: 'upstream_pagination_loop' })
  t.same([...repeat.pages.keys()], [1, 2], 'the repeated page is not stored')
})

t.test('a 429 waits until X-RateLimit-Reset, then the job completes exactly', async t => {
  const { state, adapter } = await setup(t)
  state.throttleNext(1, 1)
  const job = clinikoJob('practitioners', {})
  await adapter.run(job.ctx)
  t.same(job.records(), expected('practitioners'))
  const at = state.log.findIndex(e => e.status === 429)
  const reset = state.stats.lastReset
  t.ok(at >= 0 && reset !== null)
  t.ok((state.log[at + 1]?.at ?? 0) >= (reset as number) * 1000, 'the retry came after the reset time')

  // The simulator's own limit: a budget that allows far more is paused by each 429 until the reset.
  const small = { seed: SEED, recordCount: 12 }
  const limited = await setup(t, { ...small, rateLimit: 4, rateWindowMs: 1000 }, { requestsPerMinute: 1000 })
  const busy = clinikoJob('businesses', { per_page: 2 })
  const started = Date.now()
  await limited.adapter.run(busy.ctx)
  t.same(busy.records(), expectedRecords('businesses', {}, small))
  const many = clinikoJob('appointment_types', { per_page: 2 })
  await limited.adapter.run(many.ctx)
  t.same(many.records(), expectedRecords('appointment_types', {}, small))
  t.ok(limited.state.stats.rateLimited > 0, `${limited.state.stats.rateLimited} requests were refused by the limit`)
  t.ok(Date.now() - started < 30_000)
})

t.test('two concurrent jobs share one budget per key: no 429 under a 20-per-window limit', async t => {
  // A 3 s window rather than Cliniko's minute: short enough for a test, long enough that the budget's latency
  // allowance (a tenth of it) covers this process stalling on a busy machine, simulator included.
  const window = { rateLimit: 20, rateWindowMs: 3000 }
  const { state, adapter } = await setup(t, window, { requestsPerMinute: 20, rateWindowMs: 3000 })
  const a = clinikoJob('patients', { per_page: 20 })
  const b = clinikoJob('individual_appointments', { per_page: 20 })
  const started = Date.now()
  await Promise.all([adapter.run(a.ctx), adapter.run(b.ctx)])
  const requests = a.checkpoints.length + b.checkpoints.length
  t.ok(requests > 20, `${requests} requests, more than one window allows`)
  t.equal(state.stats.throttled, 0, 'zero 429s')
  t.ok(state.stats.peakInWindow <= 20, `at most ${state.stats.peakInWindow} requests in any window`)
  t.ok(Date.now() - started >= 3000, 'the budget held the rest back until the window slid')
  t.same(a.records(), expected('patients'))
  t.same(b.records(), expected('individual_appointments'))
})

t.test('a key of another shard, or an unknown key, fails with upstream_unauthorized; a -uk1 key works on uk1', async t => {
  const uk = await setup(t, { shard: 'uk1' })
  const err = await uk.adapter.run(clinikoJob('patients', {}).ctx).catch((e: unknown) => e)
  t.ok(err instanceof UpstreamError)
  t.match(err, { code: 'upstream_unauthorized', upstreamStatus: 401 })
  t.notMatch(String((err as Error).message), SANDBOX_API_KEY.slice(0, 12), 'the key is not in the message')
  t.equal(uk.state.stats.unauthorized, 1, 'a 401 is not retried')

  const stranger = await setup(t, {}, { apiKey: 'c29tZW9uZUVsc2U-au1' })
  await t.rejects(stranger.adapter.run(clinikoJob('patients', {}).ctx), { code: 'upstream_unauthorized' })

  const ukKey = 'dWtLZXlGb3JUZXN0cw-uk1'
  const ok = await setup(t, { shard: 'uk1', apiKeys: [ukKey] }, { apiKey: ukKey })
  const job = clinikoJob('users', {})
  await ok.adapter.run(job.ctx)
  t.same(job.records(), expectedRecords('users', {}, { seed: SEED, recordCount, shard: 'uk1' }))
})

t.test('422 maps to upstream_rejected; the message quotes nothing of Cliniko\'s body, not even field names', async t => {
  const { state, adapter } = await setup(t)
  const err = await adapter.run(clinikoJob('patients', { q: ['favourite_colour:=Blue'], sort: 'shoe_size' }).ctx).catch((e: unknown) => e)
  t.match(err, { code: 'upstream_rejected', upstreamStatus: 422, message: /422 Validation Failed; check the job's q\[\], sort and order params/ })
  t.notMatch(String((err as Error).message), /favourite|Blue|shoe|invalid q/, 'no filter text and no field of the body in the message')
  t.equal(state.stats.rejected, 1)
})

/** A hand-written Cliniko for answers the simulator never gives: `answer(url)` is each request's reply. */
async function stub (t: Test, answer: (url: URL, origin: string) => { status?: number, body: unknown }) {
  const { createServer } = await import('node:http')
  const seen: Array<{ url: string, headers: Record<string, unknown> }> = []
  let origin = ''
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers })
    const { status = 200, body } = answer(new URL(req.url ?? '/', origin), origin)
    res.writeHead(status, { 'content-type': 'application/json' }).end(typeof body === 'string' ? body : JSON.stringify(body))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const client = new UpstreamClient({ baseDelayMs: 1, maxDelayMs: 2, maxAttempts: 2 })
  t.teardown(async () => {
    await client.close()
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  const adapter = clinikoAdapter({ baseUrl: `${origin}/v1`, apiKey: 'key-au1', userAgent: 'Test (t@example.com)', requestsPerMinute: 1000 }, client, memoryServices())
  return { adapter, seen }
}

const page = (origin: string, n: number, records: unknown[], next: number | null) =>
  ({ patients: records, total_entries: 4, links: { self: `${origin}/v1/patients?page=${n}`, ...(next === null ? {} : { next: `${origin}/v1/patients?page=${next}` }) } })

t.test('the wire: headers, q[] repeated, a short page is not the end', async t => {
  const { adapter, seen } = await stub(t, (url, origin) => {
    const n = Number(url.searchParams.get('page') ?? 1)
    return { body: n === 1 ? page(origin, 1, [{ id: '1' }], 2) : page(origin, 2, [{ id: '2' }, { id: '3' }, { id: '4' }], null) }
  })
  const job = clinikoJob('patients', { q: ['updated_at:>2024-01-01T00:00:00Z', 'last_name:~~ja%on%'], sort: 'updated_at', order: 'desc', per_page: 3 })
  await adapter.run(job.ctx)
  t.same(job.records(), ['{"id":"1"}', '{"id":"2"}', '{"id":"3"}', '{"id":"4"}'], 'page 1 held one record and still was not the last')
  t.same(job.progress.map(p => p?.pagesTotal), [2, 2], 'pages from total_entries and per_page')
  const first = new URL(seen[0]?.url ?? '', 'http://x')
  t.same(first.searchParams.getAll('q[]'), ['updated_at:>2024-01-01T00:00:00Z', 'last_name:~~ja%on%'])
  t.same(Object.fromEntries([...first.searchParams].filter(([k]) => k !== 'q[]')), { sort: 'updated_at', order: 'desc', per_page: '3' })
  t.match(seen[0]?.headers, {
    authorization: `Basic ${Buffer.from('key-au1:').toString('base64')}`, 'user-agent': 'Test (t@example.com)', accept: 'application/json',
  })
})

t.test('protocol violations fail with stable codes', async t => {
  const elsewhere = await stub(t, () => ({ body: { patients: [{ id: '1' }], total_entries: 2, links: { next: 'http://evil.example/v1/patients?page=2' } } }))
  const job = clinikoJob('patients', {})
  await t.rejects(elsewhere.adapter.run(job.ctx), { code: 'invalid_upstream_response', message: /leaves/ })
  t.equal(elsewhere.seen.length, 1, 'the foreign link was not requested')
  t.same([...job.pages.keys()], [], 'nor was the page saved with it')
  const other = await stub(t, (_u, origin) => ({ body: { patients: [], total_entries: 0, links: { next: `${origin}/admin` } } }))
  await t.rejects(other.adapter.run(clinikoJob('patients', {}).ctx), { code: 'invalid_upstream_response' }, 'same origin, outside the API root')

  for (const [body, why] of [
    [{ appointments: [], links: {} }, 'wrong envelope key'],
    [{ patients: {}, links: {} }, 'not an array'],
    [{ patients: [], total_entries: 0 }, 'no links'],
    [{ patients: [], total_entries: '3', links: {} }, 'total not a number'],
    ['<html>', 'not JSON'],
  ] as const) {
    const bad = await stub(t, () => ({ body }))
    await t.rejects(bad.adapter.run(clinikoJob('patients', {}).ctx), { code: 'invalid_upstream_response' }, why)
  }
  const missing = await stub(t, () => ({ status: 404, body: { message: 'Not found' } }))
  await t.rejects(missing.adapter.run(clinikoJob('patients', {}).ctx), { code: 'upstream_not_found', upstreamStatus: 404 })
  const down = await stub(t, () => ({ status: 503, body: 'down' }))
  await t.rejects(down.adapter.run(clinikoJob('patients', {}).ctx), { code: 'upstream_unavailable', upstreamStatus: 503 })
  const empty = await stub(t, (_u, origin) => ({ body: { patients: [], total_entries: 0, links: { self: `${origin}/v1/patients` } } }))
  const none = clinikoJob('patients', {})
  await empty.adapter.run(none.ctx)
  t.same(none.checkpoints, [{ next: null, page: 1, total: 0 }], 'an empty list completes with one empty page')
})

t.test('an abort stops the job promptly, with its reason', async t => {
  const { state, adapter } = await setup(t, { latencyMs: 40 })
  const job = clinikoJob('patients', { per_page: 5 })
  const reason = new Error('cancelled by the client')
  setTimeout(() => job.controller.abort(reason), 150)
  const err = await adapter.run(job.ctx).catch((e: unknown) => e)
  t.equal(err, reason)
  // The page in flight at the abort may still be answered (the simulator does not watch the socket).
  await new Promise(resolve => setTimeout(resolve, 80))
  const served = state.totalPages('patients')
  await new Promise(resolve => setTimeout(resolve, 150))
  t.equal(state.totalPages('patients'), served, 'no request after the abort')
})
