/** The Clinia simulator on the wire: it must be exactly as strict as the bulk-write facts say, never kinder. */
import t, { type Test } from 'tap'
import { SANDBOX_CREDENTIALS, startCliniaSimulator, type CliniaSimulatorOptions } from '../../../src/upstreams/clinia/simulator/index.js'

const key = { 'x-clinia-api-key': SANDBOX_CREDENTIALS.apiKey }
const base = `/sources/${SANDBOX_CREDENTIALS.sourceKey}/v1`

async function sim (t: Test, options: CliniaSimulatorOptions = {}) {
  const s = await startCliniaSimulator(options)
  t.teardown(() => s.close())
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = key) => {
    const res = await fetch(`${s.url}${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    })
    const text = await res.text()
    return { status: res.status, headers: res.headers, text, json: JSON.parse(text) }
  }
  const submit = (operations: unknown[], resource = 'resources') => call('POST', `${base}/${resource}/bulk`, { operations })
  const read = (taskId: string, query = '?withReceipts=true', resource = 'resources') => call('GET', `${base}/${resource}/bulk/${taskId}${query}`)
  return { ...s, call, submit, read }
}

const provider = (id: string, name = 'A') => ({ action: 'CREATE', create: { id, type: 'provider', data: { name } } })

t.test('ACCEPTED with a bk_ task id; PENDING for the configured reads; receipts only with withReceipts=true', async t => {
  const s = await sim(t, { pendingPolls: 2 })
  const res = await s.submit([provider('a'), provider('b', 'x<y')])
  t.equal(res.status, 202)
  t.match(res.json, { status: 'ACCEPTED', taskId: /^bk_[0-9A-Za-z]{27}$/ })
  t.equal(res.json.bulkId, res.json.taskId.slice(3), 'bulkId: the deprecated bare id')
  const id = res.json.taskId
  t.same((await s.read(id, '')).json, { status: 'PENDING' })
  const pending = await s.read(id)
  t.same(pending.json, {
    receipts: [
      { action: 'CREATE', id: 'a', status: 'PENDING', targetType: 'RESOURCE', type: 'provider' },
      { action: 'CREATE', id: 'b', status: 'PENDING', targetType: 'RESOURCE', type: 'provider' },
    ],
    status: 'PENDING'
  })
  t.same((await s.read(id, '?withReceipts=false')).json, { status: 'SUCCESS' })
  const done = await s.read(id)
  t.equal(done.text, '{"receipts":[{"action":"CREATE","id":"a","status":"SUCCESS","targetType":"RESOURCE","type":"provider"},' +
    '{"action":"CREATE","id":"b","status":"SUCCESS","targetType":"RESOURCE","type":"provider"}],"status":"SUCCESS"}')
  t.equal((await s.read(id, '?withReceipts=yes')).status, 400)
  t.equal((await s.read(res.json.bulkId)).status, 404, 'only the bk_ form can be read back')
  t.equal((await s.read(id, '', 'relationships')).status, 404, 'a resources task is not a relationships task')
  t.equal(s.state.stats.tasksCreated, 1)
})

t.test('FAILURE when one operation fails (Go-escaped message), CANCELLED when all were cancelled', async t => {
  const s = await sim(t, { pendingPolls: 0 })
  const id = (await s.submit([provider('<a>'), provider('<a>'), { action: 'DELETE', delete: { type: 'provider', id: 'nope' } }])).json.taskId
  const done = await s.read(id)
  t.equal(done.json.status, 'FAILURE')
  t.same(done.json.receipts.map((r: { status: string, error?: { type: string } }) => [r.status, r.error?.type]),
    [['SUCCESS', undefined], ['FAILURE', 'ALREADY_EXISTS'], ['FAILURE', 'NOT_FOUND']])
  t.match(done.text, '"error":{"code":409,"message":"record with id \'\\u003ca\\u003e\' already exists","type":"ALREADY_EXISTS"}')

  const s2 = await sim(t, { pendingPolls: 5 })
  const cancelled = (await s2.submit([provider('c')])).json.taskId
  s2.state.cancel(cancelled)
  t.same((await s2.read(cancelled)).json, { receipts: [{ action: 'CREATE', id: 'c', status: 'CANCELLED', targetType: 'RESOURCE', type: 'provider' }], status: 'CANCELLED' })
})

t.test('operations run in order across requests, whichever task is read first', async t => {
  const s = await sim(t, { pendingPolls: 0 })
  const first = (await s.submit([provider('x')])).json.taskId
  const second = (await s.submit([provider('x'), { action: 'DELETE', delete: { type: 'provider', id: 'x' } }])).json.taskId
  t.same((await s.read(second)).json.receipts.map((r: { status: string }) => r.status), ['FAILURE', 'SUCCESS'], 'the first task was applied before')
  t.equal((await s.read(first)).json.status, 'SUCCESS')
})

t.test('REJECTED (400): a profile violation fails its operation and cancels the rest; too many operations cancel all', async t => {
  const s = await sim(t, { maxOperations: 3 })
  const bad = await s.submit([provider('a'), { action: 'CREATE', create: { type: 'provider', data: { name: 'n', practiceNumber: '12' } } }, provider('c')])
  t.equal(bad.status, 400)
  t.equal(bad.text, '{"receipts":[{"status":"CANCELLED"},{"error":{"code":400,"message":"create.data.practiceNumber must be of type integer",' +
    '"type":"INVALID_ARGUMENT"},"status":"FAILURE"},{"status":"CANCELLED"}],"status":"REJECTED"}')
  for (const op of [
    { action: 'CREATE', create: { type: 'clinic', data: { name: 'n' } } },
    { action: 'CREATE', create: { type: 'provider', data: { name: 'n', nickname: 'x' } } },
    { action: 'UPSERT', upsert: { id: 'a', type: 'provider', data: {} } },
    { action: 'CREATE', create: { data: {} } },
    { action: 'CREATE', create: { type: 'provider', data: { name: 'n' }, meta: { updatedAt: '2024-01-01T00:00:00Z' } } },
  ]) {
    const res = await s.submit([op])
    t.match([res.status, res.json], [400, { status: 'REJECTED', receipts: [{ status: 'FAILURE', error: { type: 'INVALID_ARGUMENT' } }] }], JSON.stringify(op))
  }
  const many = await s.submit([provider('a'), provider('b'), provider('c'), provider('d')])
  t.same([many.status, many.json], [400, { receipts: Array(4).fill({ status: 'CANCELLED' }), status: 'REJECTED' }])
  t.equal(s.state.stats.tasksCreated, 0)
  t.equal(s.state.stats.rejected, 7)
  t.equal(s.state.postsOf([provider('a'), provider('b'), provider('c'), provider('d')]), 1)
})

t.test('relationships: definitions, ends that must exist', async t => {
  const s = await sim(t, { pendingPolls: 0, seed: [{ type: 'provider', id: 'p', data: { name: 'P' } }, { type: 'office', id: 'o', data: { name: 'O' } }] })
  const link = { type: 'worksAt', from: { type: 'provider', id: 'p' }, to: { type: 'office', id: 'o' } }
  t.equal((await s.submit([{ action: 'CREATE', create: { ...link, to: { type: 'provider', id: 'p' } } }], 'relationships')).json.status, 'REJECTED')
  const id = (await s.submit([{ action: 'CREATE', create: link }, { action: 'CREATE', create: { ...link, from: { type: 'provider', id: 'q' } } }], 'relationships')).json.taskId
  t.same((await s.read(id, '?withReceipts=true', 'relationships')).json.receipts.map((r: { id: string, status: string, targetType: string }) => [r.id, r.status, r.targetType]),
    [['p.o', 'SUCCESS', 'RELATIONSHIP'], ['q.o', 'FAILURE', 'RELATIONSHIP']])
})

t.test('key, source and body checks; injected faults', async t => {
  const s = await sim(t)
  t.equal((await s.call('POST', `${base}/resources/bulk`, { operations: [provider('a')] }, {})).status, 401)
  t.equal((await s.call('POST', `${base}/resources/bulk`, { operations: [provider('a')] }, { 'x-clinia-api-key': 'wrong' })).status, 401)
  t.equal((await s.call('POST', '/sources/other/v1/resources/bulk', { operations: [provider('a')] })).status, 404)
  t.equal((await s.call('POST', `${base}/resources/bulk`, { operations: [] })).status, 400)
  t.equal((await s.call('POST', `${base}/resources/bulk`, { ops: [] })).status, 400)
  t.equal(s.state.stats.unauthorized, 2)

  s.state.failNext(1, 429, 'submit', 3)
  s.state.failNext(1, 503, 'poll')
  const throttled = await s.submit([provider('a')])
  t.same([throttled.status, throttled.headers.get('retry-after')], [429, '3'])
  const id = (await s.submit([provider('a')])).json.taskId
  t.equal((await s.read(id)).status, 503)
  t.equal((await s.read(id)).status, 200)
  t.same([s.state.stats.throttled, s.state.stats.serverErrors, s.state.stats.submits], [1, 1, 1])
})
