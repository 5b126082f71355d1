/** The simulator's wire rules, checked with plain fetch: it must be as strict as docs/UPSTREAMS.md says Cliniko is. */
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import {
  SANDBOX_API_KEY, SANDBOX_USER_AGENT, clinikoSimulator, expectedRecords, startClinikoSimulator, type ClinikoSimulatorOptions,
} from '../../../src/upstreams/cliniko/simulator/index.js'

const auth = (key: string) => `Basic ${Buffer.from(`${key}:`).toString('base64')}`

const json = (res: Response): Promise<any> => res.json()
const HEADERS = { authorization: auth(SANDBOX_API_KEY), 'user-agent': SANDBOX_USER_AGENT, accept: 'application/json' }

async function sim (t: Test, options: ClinikoSimulatorOptions = {}) {
  const s = await startClinikoSimulator({ seed: 7, recordCount: 120, ...options })
  t.teardown(() => s.close())
  const get = (path: string, headers: Record<string, string | undefined> = {}) => {
    const h = Object.fromEntries(Object.entries({ ...HEADERS, ...headers }).filter(([, v]) => v !== undefined)) as Record<string, string>
    return fetch(`${s.apiUrl}${path}`, { headers: h })
  }
  return { ...s, get }
}

t.test('edge and auth: User-Agent 403, Basic auth and shard 401 (plain text), Accept 406', async t => {
  const s = await sim(t)
  const noUa = await s.get('/patients', { 'user-agent': undefined })
  t.equal(noUa.status, 403)
  t.match(noUa.headers.get('content-type'), /^text\/plain/)
  t.equal((await s.get('/patients', { 'user-agent': 'node' })).status, 403, 'a User-Agent without (email) is refused too')

  for (const [authorization, why] of [
    [undefined, 'no credentials'],
    [auth('bm90QUtleQ-au1'), 'an unknown key'],
    [auth(SANDBOX_API_KEY.replace(/-au1$/, '-uk1')), 'the right key sent to the wrong shard'],
    [`Bearer ${SANDBOX_API_KEY}`, 'not Basic'],
  ] as const) {
    const res = await s.get('/patients', { authorization })
    t.equal(res.status, 401, why)
    t.match(res.headers.get('content-type'), /^text\/plain/, `${why}: plain text`)
    t.equal(res.headers.get('www-authenticate'), 'Basic realm="Application"')
  }
  t.equal((await s.get('/patients?per_page=1', { authorization: auth(SANDBOX_API_KEY.replace(/-au1$/, '')) })).status, 200,
    'a key without its suffix belongs to au1')
  t.equal((await s.get('/patients', { accept: undefined })).status, 406)
  t.equal((await s.get('/patients', { accept: '*/*' })).status, 406, 'Accept must name application/json')
  t.match(s.state.stats, { forbidden: 2, unauthorized: 4, notAcceptable: 2 })

  const uk = await sim(t, { shard: 'uk1', apiKeys: ['dWtLZXk-uk1'] })
  t.equal((await uk.get('/users', { authorization: auth('dWtLZXk-uk1') })).status, 200)
  t.equal((await uk.get('/users', { authorization: auth('dWtLZXk') })).status, 401, 'no suffix means au1, not uk1')
})

t.test('envelope and links: default 50 per page, absolute links, variants keep their parent key', async t => {
  const s = await sim(t)
  const want = expectedRecords('patients', {}, { seed: 7, recordCount: 120 })
  const res = await s.get('/patients?q[]=updated_at:%3E2023-01-01T00:00:00Z')
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^application\/json/)
  const text = await res.text()
  const body = JSON.parse(text)
  t.equal(body.patients.length, 50, 'Cliniko\'s default page size')
  t.equal(body.total_entries, want.length)
  t.same(body.links, {
    self: `${s.apiUrl}/patients?page=1&q%5B%5D=updated_at%3A%3E2023-01-01T00%3A00%3A00Z`,
    next: `${s.apiUrl}/patients?page=2&q%5B%5D=updated_at%3A%3E2023-01-01T00%3A00%3A00Z`,
  }, 'no previous on page 1; the query is kept')
  t.ok(text.includes(`[${want.slice(0, 50).join(',')}]`), 'the records are the expected bytes')
  t.ok(text.includes('"legacy_id":9007199254740993123'), 'a bare int64 beyond 2^53')

  const last = await json(await s.get('/patients?page=3'))
  t.same(Object.keys(last.links).sort(), ['previous', 'self'], 'no next on the last page')
  t.equal(last.patients.length, want.length - 100)
  const past = await json(await s.get('/patients?page=9'))
  t.same(past.patients, [], 'a page past the end is empty')

  const deleted = await json(await s.get('/patients/deleted?per_page=100'))
  t.ok(deleted.patients.length > 0 && deleted.patients.every((p: { deleted_at: unknown }) => p.deleted_at !== null))
  const cancelled = await json(await s.get('/individual_appointments/cancelled'))
  t.ok(cancelled.individual_appointments.every((a: { cancelled_at: unknown }) => a.cancelled_at !== null))

  // Mounted under a prefix, as the gateway does in sandbox mode: links keep it.
  const app = Fastify()
  await app.register(clinikoSimulator, { prefix: '/sandbox/cliniko', seed: 7, recordCount: 120 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const mounted = await json(await fetch(`${origin}/sandbox/cliniko/v1/patients?per_page=10`, { headers: HEADERS }))
  t.equal(mounted.links.next, `${origin}/sandbox/cliniko/v1/patients?page=2&per_page=10`)
})

t.test('422 Validation Failed for what Cliniko would not understand', async t => {
  const s = await sim(t)
  for (const [query, field] of [
    ['per_page=101', 'per_page'],
    ['per_page=0', 'per_page'],
    ['page=0', 'page'],
    ['since=2024-01-01', 'since'],
    ['q[]=favourite_colour:=blue', 'q'],
    ['q[]=updated_at:=2024-01-01T00:00:00Z', 'q'],
    ['q[]=updated_at:>2024-01-01', 'q'],
    ['q[]=id:=1,x', 'q'],
    ['q[]=last_name:!~son', 'q'],
    ['sort=shoe_size', 'sort'],
    ['order=up', 'order'],
    ['per_page=5&per_page=6', 'per_page'],
  ] as const) {
    const res = await s.get(`/patients?${query}`)
    t.equal(res.status, 422, query)
    const body = await json(res)
    t.equal(body.message, 'Validation Failed')
    t.same(Object.keys(body.errors), [field], `${query}: errors name ${field}`)
  }
  t.equal(s.state.stats.rejected, 12)
})

t.test('filters and ordering', async t => {
  const s = await sim(t, { recordCount: 90 }) // one page of 100 holds every patient
  const list = async (query: string) => (await json(await s.get(`/patients?per_page=100&${query}`))).patients as Array<Record<string, string | null>>
  const all = await list('')
  const ids = all.slice(2, 5).map(p => p.id)
  t.same((await list(`q[]=id:=${ids.join(',')}`)).map(p => p.id), ids, 'id:=a,b,c')
  const an = await list('q[]=last_name:~AN')
  t.ok(an.length > 0 && an.every(p => p.last_name?.toLowerCase().includes('an')), '~ contains, case-insensitive')
  t.same((await list('q[]=email:!?')).map(p => p.id), all.filter(p => p.email === null).map(p => p.id), '!? is null')
  t.same((await list('q[]=email:?')).map(p => p.id), all.filter(p => p.email !== null).map(p => p.id), '? is not null')
  t.ok((await list('q[]=archived_at:*')).length > all.length, '* lists archived patients too')
  const since = '2023-06-01T00:00:00Z'
  t.ok((await list(`q[]=updated_at:>${since}`)).every(p => Date.parse(p.updated_at as string) > Date.parse(since)))
  const sorted = await list('sort=updated_at:desc')
  t.same(sorted.map(p => p.updated_at), all.map(p => p.updated_at).sort().reverse(), 'sort with :desc')
  const desc = await list('order=desc')
  t.same(desc.map(p => p.id), [...all].reverse().map(p => p.id), 'order=desc on the default created_at')
})

t.test('rate limit per user: 429 with X-RateLimit-Reset in UNIX seconds; injected faults', async t => {
  const s = await sim(t, { rateLimit: 3, rateWindowMs: 60_000 })
  for (let i = 0; i < 3; i++) t.equal((await s.get('/users')).status, 200)
  const before = Date.now()
  const limited = await s.get('/users')
  t.equal(limited.status, 429)
  const reset = Number(limited.headers.get('x-ratelimit-reset'))
  t.ok(Number.isInteger(reset) && reset * 1000 >= before + 55_000 && reset * 1000 <= before + 61_000, 'the reset is when the window has room again')
  t.equal((await s.get('/users', { authorization: auth(SANDBOX_API_KEY.replace(/-au1$/, '')) })).status, 429, 'the same user without the suffix')
  t.match(s.state.stats, { rateLimited: 2, throttled: 2 })

  const f = await sim(t)
  f.state.failNext(1, 500)
  const error = await f.get('/users')
  t.equal(error.status, 500)
  t.match(error.headers.get('content-type'), /^text\/html/)
  f.state.throttleNext(1, 2)
  const throttled = await f.get('/users')
  t.equal(throttled.status, 429)
  t.ok(Number(throttled.headers.get('x-ratelimit-reset')) * 1000 >= Date.now() + 1000)
  t.equal((await f.get('/users')).status, 200)
})
