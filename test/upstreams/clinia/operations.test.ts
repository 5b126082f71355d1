/** The Clinia job body (params and operations) as POST /jobs validates it, the environment, and receipt texts. */
import t from 'tap'
import { jobRequestSchema } from '../../../src/api/job-request.js'
import { clinia } from '../../../src/upstreams/clinia/definition.js'
import { MAX_JOB_OPERATIONS, cliniaOperations } from '../../../src/upstreams/clinia/params.js'
import { notSentReceipt, withIndex } from '../../../src/upstreams/clinia/receipts.js'

const body = jobRequestSchema([clinia])
/** The JSON pointers POST /jobs would answer with (fastify-type-provider-zod joins the issue path). */
const pointers = (value: unknown): string[] => {
  const r = body.safeParse(value)
  return r.success ? [] : r.error.issues.map(i => `/${i.path.join('/')}`)
}
const job = (operations: unknown, resource = 'resources', extra: Record<string, unknown> = {}) =>
  ({ upstream: 'clinia', resource, operations, ...extra })
const provider = { action: 'CREATE', create: { type: 'provider', data: { name: 'John Doe' } } }

t.test('valid bodies: the documented shapes, params optional and empty', async t => {
  t.same(pointers(job([provider])), [])
  t.same(pointers(job([provider], 'resources', { params: {} })), [])
  t.same(pointers(job([
    { action: 'CREATE', create: { id: 'a1', type: 'provider', data: {}, contained: {}, meta: { createdAt: '2024-01-01T00:00:00Z', identifier: [{ system: 's', value: 'v' }] } } },
    { action: 'UPSERT', upsert: { id: '2eVocVVgjAWYJ74DifXluwVtSYs', type: 'provider', data: { name: 'x' } } },
    { action: 'DELETE', delete: { id: '2eVocVVgjAWYJ74DifXluwVtSYs', type: 'provider' } },
  ])), [])
  const link = { type: 'worksAt', from: { type: 'provider', id: 'p' }, to: { type: 'office', id: 'o' } }
  t.same(pointers(job([
    { action: 'CREATE', create: link },
    { action: 'UPSERT', upsert: { ...link, data: { role: 'x' } } },
    { action: 'DELETE', delete: link },
    { action: 'DELETE', delete: { type: 'worksAt', id: 'p.o' } },
  ], 'relationships')), [])
  const parsed = body.parse(job([provider]))
  t.same(parsed, { ...job([provider]), params: {} }, 'omitted params become {}; operations kept as sent')
})

t.test('malformed operations are refused with a pointer to the field', async t => {
  const ops = [provider, provider, provider, { action: 'CREATE', create: { data: {} } }]
  t.same(pointers(job(ops)), ['/operations/3/create/type'])
  t.same(pointers(job([{ action: 'MERGE', merge: {} }])), ['/operations/0/action'])
  t.same(pointers(job([{ create: provider.create }])), ['/operations/0/action'])
  t.same(pointers(job([{ action: 'CREATE', upsert: provider.create }])), ['/operations/0/create', '/operations/0'], 'the key must match the action')
  t.same(pointers(job([{ action: 'UPSERT', upsert: provider.create }])), ['/operations/0/upsert/id'], 'UPSERT needs an id')
  t.same(pointers(job([{ action: 'DELETE', delete: { type: 'provider' } }])), ['/operations/0/delete/id'])
  t.same(pointers(job([{ action: 'DELETE', delete: { type: 'provider', id: 'x', data: {} } }])), ['/operations/0/delete'], 'no data on a DELETE')
  t.same(pointers(job([{ action: 'CREATE', create: { type: 'provider', data: [] } }])), ['/operations/0/create/data'])
  t.same(pointers(job([{ action: 'CREATE', create: { type: 'provider' } }])), ['/operations/0/create/data'])
  t.same(pointers(job([{ action: 'CREATE', create: { type: 'pro vider', data: {} } }])), ['/operations/0/create/type'])
  t.same(pointers(job([{ action: 'CREATE', create: { type: 'provider', id: '', data: {} } }])), ['/operations/0/create/id'])
  t.same(pointers(job([{ action: 'CREATE', create: { type: 'provider', data: {}, meta: { source: 'x' } } }])), ['/operations/0/create/meta'])
  t.same(pointers(job([{ action: 'CREATE', create: { type: 'provider', data: {}, meta: { createdAt: 'yesterday' } } }])), ['/operations/0/create/meta/createdAt'])
  t.same(pointers(job([{ action: 'CREATE', create: { type: 'worksAt', from: { type: 'provider' }, to: { type: 'office', id: 'o' } } }], 'relationships')),
    ['/operations/0/create/from/id'])
  t.same(pointers(job([provider], 'relationships')), ['/operations/0/create/from', '/operations/0/create/to'],
    'a resource operation is not a relationship operation')
  t.same(pointers(job([{ action: 'DELETE', delete: { type: 'worksAt' } }], 'relationships')), ['/operations/0/delete/from'])
  t.same(pointers(job([{ action: 'DELETE', delete: { type: 'worksAt', id: 'p.o', from: { type: 'provider', id: 'p' } } }], 'relationships')),
    ['/operations/0/delete/id'], 'either id or the ends, not both')
})

t.test('the operation list: at least one, at most MAX_JOB_OPERATIONS, params strict', async t => {
  t.same(pointers(job([])), ['/operations'])
  t.same(pointers({ upstream: 'clinia', resource: 'resources' }), ['/operations'])
  t.same(pointers(job({ action: 'CREATE' })), ['/operations'])
  const tooMany = cliniaOperations.resources.safeParse(Array.from({ length: MAX_JOB_OPERATIONS + 1 }, () => provider))
  t.equal(tooMany.success, false)
  t.match(tooMany.error?.issues[0]?.message, `at most ${MAX_JOB_OPERATIONS} operations per job: split them into several jobs`)
  t.ok(cliniaOperations.resources.safeParse(Array.from({ length: MAX_JOB_OPERATIONS }, () => provider)).success)
  t.same(pointers(job([provider], 'resources', { params: { dryRun: true } })), ['/params'])
  t.same(pointers(job([provider], 'resources', { extra: 1 })), ['/'], 'unknown body keys are refused (problem.ts shows "/" as "")')
  t.same(pointers(job([provider], 'people')), ['/resource'])
})

t.test('every resource has a description and a valid example (Swagger UI "Try it out")', async t => {
  for (const [name, spec] of Object.entries(clinia.resources)) {
    t.ok(spec.description, `${name} described`)
    t.same(pointers(job(spec.payload?.example, name, { params: spec.example })), [], `${name} example is valid`)
  }
  t.match(clinia.resources.resources?.payload?.example, [{ action: 'CREATE', create: { type: 'provider', data: { name: 'John Doe', practiceNumber: 1020993 } } }])
})

t.test('env: no key means unconfigured; a key needs its workspace and source', async t => {
  const env = (vars: Record<string, string>) => clinia.env.safeParse(vars)
  const bare = env({})
  t.ok(bare.success)
  t.equal(bare.success && clinia.settingsFromEnv(bare.data), null)
  t.equal(env({ CLINIA_API_KEY: '' }).success && clinia.settingsFromEnv(env({ CLINIA_API_KEY: '' }).data!), null, 'empty = unset')
  const live = env({ CLINIA_BASE_URL: 'https://acme.clinia.cloud', CLINIA_API_KEY: 'k', CLINIA_SOURCE_KEY: 'ehr-prod', CLINIA_MAX_OPERATIONS: '250' })
  t.same(live.success && clinia.settingsFromEnv(live.data), {
    baseUrl: 'https://acme.clinia.cloud',
    apiKey: 'k',
    sourceKey: 'ehr-prod',
    maxOperations: 250,
    pollInitialMs: 500,
    pollMaxMs: 10_000,
    taskTimeoutMs: 3_600_000,
  })
  const half = env({ CLINIA_API_KEY: 'k' })
  t.notOk(half.success)
  t.match(half.error?.issues.map(i => i.path.join('.')), ['CLINIA_BASE_URL', 'CLINIA_SOURCE_KEY'])
  t.notOk(env({ CLINIA_SOURCE_KEY: 'has space' }).success)
  t.notOk(env({ CLINIA_MAX_OPERATIONS: '0' }).success)
  t.notOk(env({ CLINIA_BASE_URL: 'ftp://acme' }).success)
  t.match(clinia.simulator.sandboxSettings('http://127.0.0.1:1/clinia', { apiKey: 'drawn-key' }), { baseUrl: 'http://127.0.0.1:1/clinia', apiKey: 'drawn-key', sourceKey: String })
})

t.test('receipt texts: the index is spliced in, NOT_SENT receipts carry identifiers only', async t => {
  t.equal(withIndex('{"status":"SUCCESS","id":"a"}', 7), '{"index":7,"status":"SUCCESS","id":"a"}')
  t.equal(withIndex('{ "status" : "SUCCESS" }', 0), '{"index":0, "status" : "SUCCESS" }')
  t.equal(withIndex('{}', 3), '{"index":3}')
  t.equal(withIndex('{ \n }', 3), '{"index":3 \n }')
  t.throws(() => withIndex('"SUCCESS"', 1), { code: 'invalid_upstream_response' })
  const secret = { action: 'CREATE', create: { id: 'p1', type: 'provider', data: { name: 'Jane Secret' }, meta: { createdAt: '2024-01-01T00:00:00Z' } } } as const
  t.equal(notSentReceipt(secret, 4, 'resources'), '{"index":4,"status":"NOT_SENT","action":"CREATE","targetType":"RESOURCE","type":"provider","id":"p1"}')
  t.equal(notSentReceipt({ action: 'CREATE', create: { type: 'provider', data: {} } }, 5, 'resources'),
    '{"index":5,"status":"NOT_SENT","action":"CREATE","targetType":"RESOURCE","type":"provider"}', 'no id when Clinia would have made one')
  t.same(JSON.parse(notSentReceipt({ action: 'DELETE', delete: { type: 'worksAt', to: { id: 'o', type: 'office' }, from: { id: 'p', type: 'provider' } } }, 6, 'relationships')),
    { index: 6, status: 'NOT_SENT', action: 'DELETE', targetType: 'RELATIONSHIP', type: 'worksAt', from: { type: 'provider', id: 'p' }, to: { type: 'office', id: 'o' } })
})
