import t, { type Test } from 'tap'
import {
  SANDBOX_CREDENTIALS, expectedRecords, startDrchronoSimulator, type DrchronoSimulatorOptions,
} from '../../../src/upstreams/drchrono/simulator/index.js'

const auth = { authorization: `Bearer ${SANDBOX_CREDENTIALS.accessToken}` }

async function sim (t: Test, options: DrchronoSimulatorOptions = {}) {
  const s = await startDrchronoSimulator(options)
  t.teardown(() => s.close())
  const call = async (method: string, path: string, headers: Record<string, string> = auth, body?: string) => {
    const res = await fetch(`${s.url}${path}`, { method, headers, body })
    const text = await res.text()
    let json: any
    try { json = JSON.parse(text) } catch { json = undefined }
    return { status: res.status, headers: res.headers, text, json }
  }
  return { ...s, call }
}

t.test('POST 201 "In progress", polls, then Complete with the exact page', async t => {
  const s = await sim(t, { inProgressPolls: 2 })
  const post = await s.call('POST', '/api/appointments_list?since=2024-02-01&page=2&page_size=500&order_by=updated_at&verbose=true',
    { ...auth, 'content-type': 'application/json' })
  t.equal(post.status, 201)
  t.match(post.json, { status: 'In progress', uuid: /^[0-9a-f-]{36}$/ })
  t.equal(post.json.description, `Call https://drchrono.com/api/appointments_list?uuid=${post.json.uuid} to get the list`)
  for (let i = 0; i < 2; i++) {
    const poll = await s.call('GET', `/api/appointments_list?uuid=${post.json.uuid}`)
    t.same([poll.status, poll.json], [200, { status: 'In progress', uuid: post.json.uuid }])
  }
  const done = await s.call('GET', `/api/appointments_list?uuid=${post.json.uuid}`)
  const all = expectedRecords('appointments', { since: '2024-02-01', order_by: 'updated_at', verbose: true })
  t.equal(done.status, 200)
  t.same(done.json.pagination, { count: all.length, pages: Math.ceil(all.length / 500), page_size: 500, page: 2 })
  t.same(done.json.results, all.slice(500, 1000))
  t.ok(done.json.results.every((r: { id: unknown, custom_fields: unknown }) => typeof r.id === 'string' && Array.isArray(r.custom_fields)),
    'appointment ids are strings; verbose fields present')
  t.same(s.state.stats.posts, { 'appointments:2': 1 })
  t.equal(s.state.stats.gets, 3)
})

t.test('keepPages answers a page again from the bytes it kept: the same answer, with its own uuid', async t => {
  const query = '?since=2024-02-01&page=2&page_size=300&order_by=updated_at&verbose=true'
  const complete = async (s: Awaited<ReturnType<typeof sim>>, q: string) => {
    const post = await s.call('POST', `/api/appointments_list${q}`, { ...auth, 'content-type': 'application/json' })
    const done = await s.call('GET', `/api/appointments_list?uuid=${post.json.uuid}`)
    return { uuid: post.json.uuid as string, done }
  }
  const plain = await sim(t, { inProgressPolls: 0 })
  const keeping = await sim(t, { inProgressPolls: 0, keepPages: true })
  const want = await complete(plain, query)
  for (let round = 0; round < 2; round++) {
    const got = await complete(keeping, query)
    t.equal(got.done.status, 200)
    t.equal(got.done.text, want.done.text.replace(want.uuid, got.uuid), `round ${round + 1}: byte for byte, but for the uuid`)
    t.equal(got.done.headers.get('content-type'), want.done.headers.get('content-type'))
  }
  const other = await complete(keeping, query.replace('page=2', 'page=3'))
  t.same(other.done.json.results, expectedRecords('appointments', { since: '2024-02-01', order_by: 'updated_at', verbose: true }).slice(600, 900), 'another page is its own')
  const terse = await complete(keeping, query.replace('&verbose=true', ''))
  t.same(terse.done.json.results, expectedRecords('appointments', { since: '2024-02-01', order_by: 'updated_at' }).slice(300, 600), 'verbosity is part of what is kept')
  t.equal(keeping.state.keptPages.size, 3, 'three pages kept')
  keeping.state.forgetPages()
  t.equal(keeping.state.keptPages.size, 0, 'forgotten')
  const again = await complete(keeping, query)
  t.equal(again.done.text, want.done.text.replace(want.uuid, again.uuid), 'and built again when asked for')
})

t.test('filters filter and orders order', async t => {
  const byDoctor = expectedRecords('appointments', { doctor: 101, date_range: '2024-01-01/2024-03-31' })
  t.ok(byDoctor.length > 0)
  t.ok(byDoctor.every(r => r.doctor === 101 && String(r.scheduled_time) >= '2024-01-01' && String(r.scheduled_time) < '2024-04-01'))
  t.same(byDoctor.map(r => r.scheduled_time), byDoctor.map(r => r.scheduled_time).sort(), 'scheduled_time is the default order')
  const archived = expectedRecords('appointments', { show_archived: true }).length
  t.ok(archived > expectedRecords('appointments', {}).length && archived === 2500, 'archived appointments only with show_archived')
  const patients = expectedRecords('patients', { gender: 'female' })
  t.ok(patients.length > 0 && patients.every(p => p.gender === 'Female' && typeof p.id === 'number'))
  t.same(patients.map(p => p.id), patients.map(p => p.id as number).sort((a, b) => a - b), 'id is the default order')
  const updated = expectedRecords('line_items', { since: '2024-06-01T12:00:00Z', order_by: 'updated_at' })
  t.ok(updated.every(r => String(r.updated_at) >= '2024-06-01T12:00:00'))
  t.same(updated.map(r => r.updated_at), updated.map(r => r.updated_at).sort())
  t.same(expectedRecords('appointments', {}, { seed: 7 }), expectedRecords('appointments', {}, { seed: 7 }), 'deterministic')
  t.notSame(expectedRecords('appointments', {}, { seed: 7 })[0], expectedRecords('appointments', {}, { seed: 8 })[0])
})

t.test('strict about auth, params and uuids', async t => {
  const s = await sim(t)
  t.match(await s.call('POST', '/api/patients_list', {}), { status: 401, json: { detail: 'Authentication credentials were not provided.' } })
  t.match(await s.call('POST', '/api/patients_list', { authorization: 'Bearer nope' }), { status: 401, json: { detail: 'Invalid token.' } })
  t.match(await s.call('POST', '/api/patients_list?page_size=1001'), { status: 400, json: { page_size: ['Ensure this value is less than or equal to 1000.'] } })
  t.match(await s.call('POST', '/api/clinical_note_field_values_list?page_size=20000'), { status: 201 })
  t.match(await s.call('POST', '/api/patients_list?page=0'), { status: 400, json: { page: [String] } })
  t.match(await s.call('POST', '/api/patients_list?sinse=2024-01-01'), { status: 400, json: { sinse: ['Unknown query parameter.'] } })
  t.match(await s.call('POST', '/api/patients_list?since=yesterday'), { status: 400, json: { since: [String] } })
  t.match(await s.call('POST', '/api/appointments_list?order_by=id'), { status: 400, json: { order_by: [String] } })
  t.match(await s.call('POST', '/api/appointments_list?verbose=yes'), { status: 400, json: { verbose: ['Must be a valid boolean.'] } })
  t.match(await s.call('GET', '/api/patients_list?uuid=4d9a7c2e-0000-4000-8000-000000000000'), { status: 404, json: { detail: 'Invalid uuid specified' } })
  t.match(await s.call('GET', '/api/patients_list'), { status: 400, json: { uuid: ['This field is required.'] } })
  const post = await s.call('POST', '/api/patients_list')
  t.match(await s.call('GET', `/api/appointments_list?uuid=${post.json.uuid}`), { status: 404 }, 'a uuid belongs to its list')
  t.equal(s.state.stats.unauthorized, 2)
})

t.test('a page past the end is refused in the way chosen; requests are counted by page', async t => {
  const s = await sim(t, { inProgressPolls: 1 })
  const pollTwice = async (uuid: string) => [
    await s.call('GET', `/api/appointments_list?uuid=${uuid}`),
    await s.call('GET', `/api/appointments_list?uuid=${uuid}`),
    await s.call('GET', `/api/appointments_list?uuid=${uuid}`),
  ].map(r => [r.status, r.json?.status ?? r.json?.detail])
  // Appointments hold 3 pages of 1000: page 4 is past the end.
  t.equal(s.state.pastEndMode, 'poll-404', 'by default the POST is accepted and the poll refuses the page')
  const accepted = await s.call('POST', '/api/appointments_list?page=4')
  t.match(accepted, { status: 201, json: { status: 'In progress', uuid: String } })
  t.same(await pollTwice(accepted.json.uuid), [[200, 'In progress'], [404, 'Invalid page.'], [404, 'Invalid uuid specified']],
    'in progress while the list is built, then "Invalid page.", and the uuid is dead')

  s.state.setPastEnd('post-404')
  t.match(await s.call('POST', '/api/appointments_list?page=4'), { status: 404, json: { detail: 'Invalid page.' } })

  s.state.setPastEnd('complete-empty')
  const empty = await s.call('POST', '/api/appointments_list?page=4')
  await s.call('GET', `/api/appointments_list?uuid=${empty.json.uuid}`)
  const done = await s.call('GET', `/api/appointments_list?uuid=${empty.json.uuid}`)
  t.match(done, { status: 200, json: { status: 'Complete', results: [] } })
  t.same(done.json.pagination, { count: expectedRecords('appointments', {}).length, pages: 3, page_size: 1000, page: 4 }, 'the real size, the page asked')

  s.state.setPastEnd('failed-500')
  for (let i = 0; i < 2; i++) {
    const failing = await s.call('POST', '/api/appointments_list?page=4')
    t.same((await pollTwice(failing.json.uuid)).slice(0, 2), [[200, 'In progress'], [500, 'Failed']], 'a failed generation, every time')
  }
  t.equal(s.state.stats.generationErrors, 0, 'not counted as an injected failure')

  t.same(s.state.stats.invalidPages, { 'appointments:4': 2 }, 'one poll and one POST answered "Invalid page."')
  t.equal(s.state.pastEndRequests('appointments'), 4 + 1 + 3 + 2 * 4, 'every request about page 4: POSTs, polls, polls of its dead uuids')
  t.equal(s.state.requestsFor('appointments', 4), s.state.pastEndRequests('appointments'))
  s.state.throttleNext(1, 0)
  await s.call('POST', '/api/appointments_list?page=2')
  await s.call('POST', '/api/appointments_list?page=2')
  await s.call('GET', '/api/appointments_list?uuid=4d9a7c2e-0000-4000-8000-000000000000')
  t.equal(s.state.requestsFor('appointments', 2), 2, 'a throttled request counts too')
  t.equal(s.state.stats.requests['appointments:?'], 1, 'a uuid the simulator never issued counts for no page')
  t.equal(s.state.totalRequests('appointments'), 16 + 3)
  s.state.reset()
  t.equal(s.state.pastEndMode, 'poll-404', 'reset() restores the configured behaviour')
})

t.test('lists expire after their TTL, and on demand', async t => {
  let now = 1_000_000
  const s = await sim(t, { inProgressPolls: 0, uuidTtlMs: 60_000, now: () => now })
  const post = await s.call('POST', '/api/patients_list')
  t.equal((await s.call('GET', `/api/patients_list?uuid=${post.json.uuid}`)).json.status, 'Complete')
  now += 60_000
  t.match(await s.call('GET', `/api/patients_list?uuid=${post.json.uuid}`), { status: 404, json: { detail: 'Invalid uuid specified' } })
  const again = await s.call('POST', '/api/patients_list')
  s.state.expire()
  t.equal((await s.call('GET', `/api/patients_list?uuid=${again.json.uuid}`)).status, 404)
  t.equal(s.state.stats.invalidUuids, 2)
})

t.test('faults: 429 with DRF wording, 5xx, failed generation', async t => {
  const s = await sim(t, { inProgressPolls: 0 })
  s.state.throttleNext(2, 1)
  const throttled = await s.call('POST', '/api/patients_list')
  t.match(throttled, { status: 429, json: { detail: 'Request was throttled. Expected available in 1 second.' } })
  t.equal(throttled.headers.get('retry-after'), '1')
  s.state.setRetryAfterHeader(false)
  t.equal((await s.call('POST', '/api/patients_list')).headers.get('retry-after'), null)
  s.state.failNext(1, 502)
  t.match(await s.call('POST', '/api/patients_list'), { status: 502, text: 'Bad Gateway' })
  s.state.failNext(1, 500)
  t.match(await s.call('POST', '/api/patients_list'), { status: 500, json: { detail: 'A server error occurred.' } })
  s.state.failGeneration(1)
  const post = await s.call('POST', '/api/patients_list')
  t.match(await s.call('GET', `/api/patients_list?uuid=${post.json.uuid}`), { status: 500, json: { status: 'Error', uuid: post.json.uuid } })
  t.equal((await s.call('GET', `/api/patients_list?uuid=${post.json.uuid}`)).status, 404, 'a failed list is dead')
  const retry = await s.call('POST', '/api/patients_list')
  t.equal((await s.call('GET', `/api/patients_list?uuid=${retry.json.uuid}`)).json.status, 'Complete', 'a new POST generates fine')
  t.match(s.state.stats, { throttled: 2, serverErrors: 2, generationErrors: 1 })
  s.state.reset()
  t.same(s.state.stats.posts, {})
})

t.test('rate limit per second when asked', async t => {
  const s = await sim(t, { maxRequestsPerSecond: 3 })
  const statuses = []
  for (let i = 0; i < 5; i++) statuses.push((await s.call('POST', '/api/patients_list')).status)
  t.same(statuses, [201, 201, 201, 429, 429])
})

const form = (refresh: string, secret: string = SANDBOX_CREDENTIALS.clientSecret) => new URLSearchParams({
  grant_type: 'refresh_token', refresh_token: refresh, client_id: SANDBOX_CREDENTIALS.clientId, client_secret: secret,
}).toString()
const urlencoded = { 'content-type': 'application/x-www-form-urlencoded' }

t.test('token refresh rotates both tokens; each refresh token works once', async t => {
  const s = await sim(t)
  t.match(await s.call('POST', '/o/token/', urlencoded, form('wrong')), { status: 400, json: { error: 'invalid_grant' } }, 'oauthlib: invalid_grant is 400')
  t.match(await s.call('POST', '/o/token/', urlencoded, form(SANDBOX_CREDENTIALS.refreshToken, 'bad')), { status: 401, json: { error: 'invalid_client' } })
  const ok = await s.call('POST', '/o/token/', urlencoded, form(SANDBOX_CREDENTIALS.refreshToken))
  t.match(ok, { status: 200, json: { access_token: String, refresh_token: String, expires_in: 172800, token_type: 'Bearer', scope: String } })
  t.equal((await s.call('POST', '/api/patients_list')).status, 401, 'the old access token is dead')
  t.equal((await s.call('POST', '/api/patients_list', { authorization: `Bearer ${ok.json.access_token}` })).status, 201)
  t.match(await s.call('POST', '/o/token/', urlencoded, form(SANDBOX_CREDENTIALS.refreshToken)), { status: 400, json: { error: 'invalid_grant' } },
    'so is the configured refresh token')
  const next = await s.call('POST', '/o/token/', urlencoded, form(ok.json.refresh_token))
  t.equal(next.status, 200, 'the rotated one works')
  t.match(await s.call('POST', '/o/token/', urlencoded, form(ok.json.refresh_token)), { status: 400 }, 'once')
  t.same([s.state.stats.tokenRefreshes, s.state.stats.failedRefreshes], [2, 4])
})

t.test('issued tokens expire after expires_in; invalid_grant may be configured as 401', async t => {
  let now = 1_000_000
  const s = await sim(t, { tokenExpiresInSeconds: 60, invalidGrantStatus: 401, now: () => now })
  const ok = await s.call('POST', '/o/token/', urlencoded, form(SANDBOX_CREDENTIALS.refreshToken))
  t.equal(ok.json.expires_in, 60)
  const bearer = { authorization: `Bearer ${ok.json.access_token}` }
  now += 59_000
  t.equal((await s.call('POST', '/api/patients_list', bearer)).status, 201, 'accepted before its expiry')
  now += 1_000
  t.match(await s.call('POST', '/api/patients_list', bearer), { status: 401, json: { detail: 'Invalid token.' } }, 'refused from its expiry on')
  t.match(await s.call('POST', '/o/token/', urlencoded, form('wrong')), { status: 401, json: { error: 'invalid_grant' } })
})

t.test('token requests can be held, to line up concurrent refreshes', async t => {
  const s = await sim(t)
  const release = s.state.holdTokenRequests()
  const pending = s.call('POST', '/o/token/', urlencoded, form(SANDBOX_CREDENTIALS.refreshToken))
  while (s.state.waitingTokenRequests === 0) await new Promise(resolve => setTimeout(resolve, 5))
  t.equal(s.state.stats.tokenRefreshes, 0, 'not answered while held')
  release()
  t.equal((await pending).status, 200)
  t.equal(s.state.waitingTokenRequests, 0)
})
