/** The job API without workers: validation, auth, ownership, idempotency, in-flight dedupe, 409 before completion. */
import t from 'tap'
import { registry } from '../../src/upstreams/registry.js'
import { clientKeys, startGateway } from '../helpers/gateway.js'

const body = { upstream: 'drchrono', resource: 'appointments', params: { since: '2024-02-01' } }
const json = (value: unknown) => JSON.stringify(value)

t.test('job API', async t => {
  const gw = await startGateway(t, { startWorkers: false })

  t.test('POST /jobs queues a job: 202, absolute Location, the job', async t => {
    const res = await gw.request('/jobs', { method: 'POST', body: json(body) })
    t.equal(res.status, 202)
    const job = await res.json()
    t.equal(res.headers.get('location'), `${gw.url}/jobs/${job.id}`)
    t.match(job, { upstream: 'drchrono', resource: 'appointments', status: 'queued', error: null, startedAt: null, completedAt: null, expiresAt: null })
    t.equal(job.params.since, '2024-02-01')
    t.same(job.progress, { records: 0, pagesDone: 0, pagesTotal: null, percent: null, succeeded: null, failed: null })
    t.same(job.links, { self: `/jobs/${job.id}`, results: `/jobs/${job.id}/results` })
    t.equal(res.headers.get('retry-after'), '1')

    const read = await gw.request(`/jobs/${job.id}`)
    t.equal(read.status, 200)
    t.equal(read.headers.get('x-progress'), 'queued')
    t.equal((await read.json()).id, job.id)

    const results = await gw.request(`/jobs/${job.id}/results`)
    t.equal(results.status, 409, 'results before completion are 409')
    t.equal(results.headers.get('content-type'), 'application/problem+json; charset=utf-8')
  })

  t.test('an identical read job in flight is returned with 200, a different one is new', async t => {
    const params = { since: '2023-01-01', doctor: 7 }
    const first = await (await gw.request('/jobs', { method: 'POST', body: json({ ...body, params }) })).json()
    const again = await gw.request('/jobs', { method: 'POST', body: json({ resource: 'appointments', params: { doctor: 7, since: '2023-01-01' }, upstream: 'drchrono' }) })
    t.equal(again.status, 200)
    t.equal((await again.json()).id, first.id)
    const other = await gw.request('/jobs', { method: 'POST', body: json({ ...body, params: { since: '2023-01-02' } }) })
    t.equal(other.status, 202)
    const otherClient = await gw.request('/jobs', { method: 'POST', key: clientKeys.beta, body: json({ ...body, params }) })
    t.equal(otherClient.status, 202, 'another client gets its own job')
  })

  t.test('Idempotency-Key: same key and body → same job (200); different body → 422', async t => {
    const headers = { 'idempotency-key': 'key-1' }
    const first = await gw.request('/jobs', { method: 'POST', headers, body: json({ ...body, params: { since: '2022-05-05' } }) })
    t.equal(first.status, 202)
    const job = await first.json()
    const replay = await gw.request('/jobs', { method: 'POST', headers, body: json({ params: { since: '2022-05-05' }, resource: 'appointments', upstream: 'drchrono' }) })
    t.equal(replay.status, 200)
    t.equal((await replay.json()).id, job.id)
    const conflict = await gw.request('/jobs', { method: 'POST', headers, body: json({ ...body, params: { since: '2022-05-06' } }) })
    t.equal(conflict.status, 422)
    const problem = await conflict.json()
    t.match(problem, { status: 422, title: 'Unprocessable Content', errors: [{ in: 'header', pointer: '/Idempotency-Key' }] })
    const otherClient = await gw.request('/jobs', { method: 'POST', key: clientKeys.beta, headers, body: json({ ...body, params: { since: '2022-05-06' } }) })
    t.equal(otherClient.status, 202, 'keys are per client')
  })

  t.test('malformed bodies: 400 problem+json naming the field', async t => {
    const cases: Array<[unknown, string]> = [
      [{ ...body, upstream: 'nope' }, '/upstream'],
      [{ ...body, resource: 'nope' }, '/resource'],
      [{ ...body, params: { since: 'yesterday' } }, '/params/since'],
      [{ ...body, params: { since: '2024-02-01', bogus: 1 } }, '/params'],
      [{ ...body, params: { page_size: 5000 } }, '/params/page_size'],
      [{ ...body, params: { verbose: 'true' } }, '/params/verbose'],
      [{ ...body, extra: true }, ''],
    ]
    for (const [payload, pointer] of cases) {
      const res = await gw.request('/jobs', { method: 'POST', body: json(payload) })
      t.equal(res.status, 400, `400 for ${json(payload)}`)
      t.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8')
      const problem = await res.json()
      t.equal(problem.status, 400)
      t.ok(problem.errors.some((e: { pointer: string, in: string }) => e.in === 'body' && e.pointer === pointer), `pointer ${pointer} in ${json(problem.errors)}`)
    }
    const broken = await gw.request('/jobs', { method: 'POST', body: '{"upstream":' })
    t.equal(broken.status, 400)
    t.equal(broken.headers.get('content-type'), 'application/problem+json; charset=utf-8')
  })

  t.test('auth: no key or a wrong key is 401; another client\'s job is 404', async t => {
    t.equal((await gw.request('/jobs', { key: null })).status, 401)
    const wrong = await gw.request('/upstreams', { key: 'not-a-key-at-all' })
    t.equal(wrong.status, 401)
    t.match(await wrong.json(), { status: 401, code: 'unauthorized', type: 'tag:bulk-gateway,2026:problem:unauthorized' })
    const job = await (await gw.request('/jobs', { method: 'POST', body: json({ ...body, params: { since: '2021-01-01' } }) })).json()
    t.equal((await gw.request(`/jobs/${job.id}`, { key: clientKeys.beta })).status, 404)
    t.equal((await gw.request(`/jobs/${job.id}/results`, { key: clientKeys.beta })).status, 404)
    t.equal((await gw.request(`/jobs/${job.id}`, { method: 'DELETE', key: clientKeys.beta })).status, 404)
    t.equal((await gw.request('/jobs/not-a-uuid')).status, 404)
    t.equal((await gw.request('/jobs/00000000-0000-4000-8000-000000000000')).status, 404)
    t.equal((await gw.request('/health/live', { key: null })).status, 200)
  })

  t.test('a request\'s log lines name its client, and only that request\'s', async t => {
    const alpha = await (await gw.request('/jobs', { method: 'POST', body: json({ ...body, params: { since: '2021-06-01' } }) })).json()
    const beta = await (await gw.request('/jobs', { method: 'POST', key: clientKeys.beta, body: json({ ...body, params: { since: '2021-06-01' } }) })).json()
    const queued = gw.logs.map(l => JSON.parse(l)).filter(l => l.msg === 'job queued')
    t.match(queued.find(l => l.jobId === alpha.id), { client: 'alpha', reqId: String })
    t.match(queued.find(l => l.jobId === beta.id), { client: 'beta', reqId: String })
    const health = gw.logs.map(l => JSON.parse(l)).filter(l => l.req?.url === '/health/live')
    t.ok(health.length > 0 && health.every(l => l.client === undefined), 'no client on requests outside /jobs')
  })

  t.test('GET /jobs lists own jobs newest first with a cursor and filters', async t => {
    const all: string[] = []
    let cursor: string | null = null
    do {
      const res = await gw.request(`/jobs?limit=2${cursor !== null ? `&cursor=${cursor}` : ''}`)
      t.equal(res.status, 200)
      const page: { data: Array<{ id: string, createdAt: string }>, nextCursor: string | null } = await res.json()
      all.push(...page.data.map(j => j.id))
      cursor = page.nextCursor
    } while (cursor !== null)
    t.equal(new Set(all).size, all.length, 'no job twice')
    const everything = await (await gw.request('/jobs?limit=100')).json()
    t.same(all, everything.data.map((j: { id: string }) => j.id))
    const created = everything.data.map((j: { createdAt: string }) => j.createdAt)
    t.same(created, [...created].sort().reverse(), 'newest first')
    const beta = await (await gw.request('/jobs?limit=100', { key: clientKeys.beta })).json()
    t.ok(beta.data.every((j: { id: string }) => !all.includes(j.id)), 'clients see only their own jobs')
    t.equal((await (await gw.request('/jobs?status=completed')).json()).data.length, 0)
    t.equal((await gw.request('/jobs?cursor=garbage')).status, 400)
    t.equal((await gw.request('/jobs?limit=1000')).status, 400)
  })

  t.test('DELETE cancels a queued job; results then answer 410', async t => {
    const job = await (await gw.request('/jobs', { method: 'POST', body: json({ ...body, params: { since: '2020-01-01' } }) })).json()
    const res = await gw.request(`/jobs/${job.id}`, { method: 'DELETE' })
    t.equal(res.status, 202)
    const cancelled = await res.json()
    t.equal(cancelled.status, 'cancelled')
    t.not(cancelled.expiresAt, null)
    t.equal((await gw.request(`/jobs/${job.id}`, { method: 'DELETE' })).status, 202, 'idempotent')
    t.equal((await gw.request(`/jobs/${job.id}/results`)).status, 410)
  })

  t.test('GET /upstreams lists upstreams with resources and params schemas', async t => {
    const res = await gw.request('/upstreams')
    t.equal(res.status, 200)
    const { data } = await res.json()
    t.same(data.map((u: { name: string }) => u.name), registry.names, 'every registered upstream, in the registry\'s order')
    for (const upstream of data) {
      t.ok(upstream.resources.length > 0 && upstream.resources.every((r: { params: { type?: string } }) => r.params.type === 'object'), `${upstream.name}: resources with params schemas`)
    }
    const drchrono = data.find((u: { name: string }) => u.name === 'drchrono')
    t.equal(drchrono.mode, 'unconfigured')
    t.equal(drchrono.resources.length, 8)
    t.ok(drchrono.resources.find((r: { name: string }) => r.name === 'appointments').params.properties.since)
  })
})
