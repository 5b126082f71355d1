import t, { type Test } from 'tap'
import {
  SANDBOX_CREDENTIALS, expectedRecords, startDrchronoSimulator, type DrchronoSimulatorOptions,
} from '../../src/upstreams/drchrono/simulator.js'

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
  t.match(await s.call('POST', '/api/appointments_list?page=4'), { status: 404, json: { detail: 'Invalid page.' } }, 'only 3 pages')
  t.match(await s.call('GET', '/api/patients_list?uuid=4d9a7c2e-0000-4000-8000-000000000000'), { status: 404, json: { detail: 'Invalid uuid specified' } })
  t.match(await s.call('GET', '/api/patients_list'), { status: 400, json: { uuid: ['This field is required.'] } })
  const post = await s.call('POST', '/api/patients_list')
  t.match(await s.call('GET', `/api/appointments_list?uuid=${post.json.uuid}`), { status: 404 }, 'a uuid belongs to its list')
  t.equal(s.state.stats.unauthorized, 2)
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

t.test('token refresh rotates both tokens', async t => {
  const s = await sim(t)
  const form = (refresh: string, secret: string = SANDBOX_CREDENTIALS.clientSecret) => new URLSearchParams({
    grant_type: 'refresh_token', refresh_token: refresh, client_id: SANDBOX_CREDENTIALS.clientId, client_secret: secret,
  }).toString()
  const urlencoded = { 'content-type': 'application/x-www-form-urlencoded' }
  t.match(await s.call('POST', '/o/token/', urlencoded, form('wrong')), { status: 401, json: { error: 'invalid_grant' } })
  t.match(await s.call('POST', '/o/token/', urlencoded, form(SANDBOX_CREDENTIALS.refreshToken, 'bad')), { status: 401, json: { error: 'invalid_client' } })
  const ok = await s.call('POST', '/o/token/', urlencoded, form(SANDBOX_CREDENTIALS.refreshToken))
  t.match(ok, { status: 200, json: { access_token: String, refresh_token: String, expires_in: 172800, token_type: 'Bearer', scope: String } })
  t.equal((await s.call('POST', '/api/patients_list')).status, 401, 'the old access token is dead')
  t.equal((await s.call('POST', '/api/patients_list', { authorization: `Bearer ${ok.json.access_token}` })).status, 201)
  t.match(await s.call('POST', '/o/token/', urlencoded, form(SANDBOX_CREDENTIALS.refreshToken)), { status: 401 }, 'so is the old refresh token')
  t.equal(s.state.stats.tokenRefreshes, 1)
})
