/** The OCL adapter's changes jobs, and how OCL's errors map to job errors, against the simulator. */
import t, { type Test } from 'tap'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { oclAdapter, type OclSettings } from '../../../src/upstreams/ocl/adapter.js'
import type { OclChangesCheckpoint } from '../../../src/upstreams/ocl/changes-job.js'
import { SANDBOX_OCL_TOKEN, expectedChanges, startOclSimulator, type OclSimulatorOptions } from '../../../src/upstreams/ocl/simulator/index.js'
import { UpstreamError } from '../../../src/domain/errors.js'
import { fakeJob } from '../../helpers/job-context.js'

const CIEL = { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL' } as const
const ALL = { ...CIEL, updatedSince: '2019-01-01', includeRetired: true }

async function setup (t: Test, sim: OclSimulatorOptions = {}, settings: Partial<OclSettings> = {}) {
  const simulator = await startOclSimulator({ retryAfterSeconds: 0, ...sim })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => {
    await client.close()
    await simulator.close()
  })
  const adapter = oclAdapter({ baseUrl: simulator.url, token: SANDBOX_OCL_TOKEN, pollInitialMs: 1, pollMaxMs: 4, ...settings }, client)
  return { state: simulator.state, adapter }
}

/** An OCL job on the engine's side, in memory (test/helpers/job-context.ts). */
const oclJob = (resource: 'export' | 'changes', params: Record<string, unknown>, checkpoint: OclChangesCheckpoint | null = null) =>
  fakeJob<OclChangesCheckpoint>(resource, params, { checkpoint })

const expected = (p: { updatedSince: string, includeRetired: boolean }, target: { ownerType: string, owner: string, source: string } = CIEL) =>
  expectedChanges({}, { ...target, sinceMs: Date.parse(p.updatedSince.length === 10 ? `${p.updatedSince}T00:00:00Z` : p.updatedSince), includeRetired: p.includeRetired })

t.test('concepts then mappings across several header-paginated pages, exact, with limit 1000', async t => {
  const { state, adapter } = await setup(t)
  const job = oclJob('changes', ALL)
  await adapter.run(job.ctx)
  const want = expected(ALL)
  t.equal(want.length, 2300 + 1700, 'every record, retired ones included')
  t.same(job.records(), want, 'same text, same order')
  t.same([...job.pages].map(([page, records]) => [page, records.length]), [[1, 1000], [2, 1000], [3, 300], [4, 1000], [5, 700]])
  t.equal(state.stats.limitFallbacks, 0, 'never a limit OCL would silently turn into 25')
  t.equal(state.stats.listRequests, 5 + 1, 'five pages and one count of the mappings for progress')
  t.same(job.progress.map(p => p?.pagesTotal), [5, 5, 5, 5, 5], 'num_found gives the total from the first page')
  t.same(job.checkpoints.map(c => [c.list, c.page, c.read]), [['concepts', 2, 1000], ['concepts', 3, 2000], ['mappings', 1, 0], ['mappings', 2, 1000], ['done', 1, 0]])

  const recent = { ...CIEL, updatedSince: '2024-11-15T12:30:00+01:00', includeRetired: false }
  const few = oclJob('changes', recent)
  await adapter.run(few.ctx)
  t.same(few.records(), expected(recent), 'a datetime with an offset, retired records left out')
  t.ok(few.records().every(r => !JSON.parse(r).retired && Date.parse(JSON.parse(r).updated_on) >= Date.parse(recent.updatedSince)))
  const none = oclJob('changes', { ...CIEL, updatedSince: '2030-01-01', includeRetired: false })
  await adapter.run(none.ctx)
  t.equal(none.pages.size, 0, 'nothing changed: no pages')
})

t.test('resume continues the list and page it stopped at', async t => {
  const { state, adapter } = await setup(t)
  const checkpoint: OclChangesCheckpoint = { kind: 'changes', list: 'mappings', page: 2, read: 1000, pagesSaved: 4, found: { concepts: 2300, mappings: 1700 } }
  const job = oclJob('changes', ALL, checkpoint)
  await adapter.run(job.ctx)
  t.same([...job.pages.keys()], [5])
  t.same(job.pages.get(5), expected(ALL).slice(2300 + 1000))
  t.equal(state.stats.listRequests, 1, 'one request: no count needed, the totals were saved')
  const done = oclJob('changes', ALL, { ...checkpoint, list: 'done', page: 1, read: 0, pagesSaved: 5 })
  await adapter.run(done.ctx)
  t.equal(done.pages.size, 0, 'a finished job has nothing left to read')
})

t.test('a next link that points back is a pagination loop', async t => {
  const { state, adapter } = await setup(t)
  state.loopNextLinks()
  const job = oclJob('changes', ALL)
  await t.rejects(adapter.run(job.ctx), { code: 'upstream_pagination_loop' })
  t.same([...job.pages.keys()], [1], 'the first page was stored once')
})

t.test('429s and 5xx are retried by the client and the job completes exactly', async t => {
  const { state, adapter } = await setup(t)
  state.throttleNext(2)
  state.failNext(2, 502)
  const job = oclJob('changes', ALL)
  await adapter.run(job.ctx)
  t.same(job.records(), expected(ALL))
  t.match(state.stats, { throttled: 2, serverErrors: 2 })
  state.failNext(2, 500)
  const exportJob = oclJob('export', { ...CIEL, ownerType: 'users', owner: 'jdoe', source: 'ClinicTerms' })
  await adapter.run(exportJob.ctx)
  t.equal(exportJob.records().length, 60 + 30, 'the export protocol survives them too')
})

t.test('OCL errors map to stable codes, without the token in any message', async t => {
  const { state, adapter } = await setup(t)
  const fail = async (a: typeof adapter, resource: 'export' | 'changes', params: Record<string, unknown>) => {
    const err = await a.run(oclJob(resource, params).ctx).catch((e: unknown) => e)
    t.ok(err instanceof UpstreamError, `${resource} ${JSON.stringify(params)} fails with an UpstreamError`)
    return err as UpstreamError
  }
  t.match(await fail(adapter, 'export', { ...CIEL, owner: 'Nobody' }), { code: 'upstream_not_found', upstreamStatus: 404, message: /OCL answered 404; the owner, source or version does not exist/ })
  t.notMatch((await fail(adapter, 'export', { ...CIEL, owner: 'Nobody' })).message, /Not found\./, 'OCL\'s detail is not quoted')
  t.match(await fail(adapter, 'export', { ...CIEL, version: 'v9' }), { code: 'upstream_not_found', upstreamStatus: 404 })
  t.match(await fail(adapter, 'export', { ownerType: 'orgs', owner: 'MSF', source: 'Drafts' }), { code: 'upstream_not_found', message: /no released version/ })
  t.match(await fail(adapter, 'export', { ...CIEL, version: 'HEAD' }), { code: 'upstream_rejected', upstreamStatus: 405 })
  t.match(await fail(adapter, 'changes', { ...ALL, source: 'Nope' }), { code: 'upstream_not_found', upstreamStatus: 404 })

  const { adapter: wrong } = await setup(t, {}, { token: 'a-token-ocl-does-not-know' })
  const refused = await fail(wrong, 'changes', ALL)
  t.match(refused, { code: 'upstream_unauthorized', upstreamStatus: 401, message: /OCL answered 401; check OCL_TOKEN/ })
  t.notMatch(refused.message, /Invalid token/, 'OCL\'s detail is not quoted')
  t.notMatch(refused.message, /a-token-ocl-does-not-know/)

  const { state: open, adapter: anonymous } = await setup(t, {}, { token: undefined })
  t.match(await fail(anonymous, 'changes', { ...ALL, ownerType: 'users', owner: 'jdoe', source: 'ClinicTerms' }), { code: 'upstream_unauthorized', upstreamStatus: 401 })
  const publicJob = oclJob('changes', { ...CIEL, updatedSince: '2024-12-01', includeRetired: false })
  await anonymous.run(publicJob.ctx)
  t.same(publicJob.records(), expected({ updatedSince: '2024-12-01', includeRetired: false }), 'public sources need no token')
  t.equal(open.stats.unauthorized, 1)

  state.failNext(10, 503)
  t.match(await fail(adapter, 'changes', ALL), { code: 'upstream_unavailable', upstreamStatus: 503 })
  await t.rejects(adapter.run(oclJob('changes', { ...ALL, extra: 1 }).ctx), { code: 'internal_error' }, 'params are checked again')
})
