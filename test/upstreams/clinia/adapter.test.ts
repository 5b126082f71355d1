import t, { type Test } from 'tap'
import { cliniaAdapter, type CliniaCheckpoint, type CliniaSettings } from '../../../src/upstreams/clinia/adapter.js'
import type { CliniaResource } from '../../../src/upstreams/clinia/params.js'
import {
  SANDBOX_CREDENTIALS, goJson, startCliniaSimulator, type CliniaSimulatorOptions, type CliniaSimulatorState,
} from '../../../src/upstreams/clinia/simulator/index.js'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { fakeJob, type FakeJobOptions } from '../../helpers/job-context.js'

/** A simulator on a loopback port and an adapter pointed at it (3 operations per chunk, tiny waits). */
async function setup (t: Test, sim: CliniaSimulatorOptions = {}, settings: Partial<CliniaSettings> = {}) {
  const simulator = await startCliniaSimulator({ pendingPolls: 1, ...sim })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => {
    await client.close()
    await simulator.close()
  })
  const make = (s: Partial<CliniaSettings> = {}) => cliniaAdapter({
    baseUrl: simulator.url, ...SANDBOX_CREDENTIALS, maxOperations: 3, pollInitialMs: 2, pollMaxMs: 10, ...settings, ...s,
  }, client)
  return { simulator, state: simulator.state, adapter: make(), make }
}

/** A Clinia write job on the engine's side, in memory (test/helpers/job-context.ts); `parsed` reads its receipts. */
function cliniaJob (resource: CliniaResource, operations: unknown[], options: Pick<FakeJobOptions<CliniaCheckpoint>, 'checkpoint' | 'pages' | 'afterCheckpoint'> = {}) {
  const job = fakeJob<CliniaCheckpoint>(resource, {}, { payload: { operations }, ...options })
  const parsed = () => job.records().map(r => JSON.parse(r) as Record<string, any>)
  return { ...job, parsed }
}

/** The texts a job must store: every task's receipts exactly as the simulator sent them, with `"index":N,` spliced in. */
function expectedFromTasks (state: CliniaSimulatorState): string[] {
  return [...state.tasks.values()].flatMap(task => (task.receipts ?? []).map(r => goJson(r)))
    .map((raw, i) => `{"index":${i},${raw.slice(1)}`)
}

// Ids with <, > and &: Clinia's encoder escapes them, so a receipt that was re-serialised would read differently.
const create = (i: number, data: Record<string, unknown> = {}) =>
  ({ action: 'CREATE', create: { id: `p<${i}>&`, type: 'provider', data: { name: `Provider ${i}`, practiceNumber: 1000 + i, ...data } } })
const chunksOf = <T>(list: T[], size: number): T[][] => Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size))

t.test('operations go in ordered chunks, one task each; receipts are stored exactly, with their index', async t => {
  const { state, adapter } = await setup(t, { pendingPolls: 2 })
  const ops = Array.from({ length: 8 }, (_, i) => create(i))
  const job = cliniaJob('resources', ops)
  await adapter.run(job.ctx)

  t.equal(state.stats.tasksCreated, 3, 'ceil(8 / 3) tasks')
  t.same([...state.tasks.values()].map(task => task.operations.length), [3, 3, 2])
  for (const chunk of chunksOf(ops, 3)) t.equal(state.postsOf(chunk), 1, 'each chunk POSTed once')
  t.same([...job.pages.keys()], [1, 2, 3], 'page N = chunk N')
  t.same(job.records(), expectedFromTasks(state), 'Clinia\'s receipt texts, unchanged but for the index')
  t.ok(job.records().every(r => r.includes('\\u003c')), 'Clinia\'s escapes kept: nothing was re-serialised')
  t.same(job.parsed().map(r => [r.index, r.id, r.status, r.action, r.targetType]),
    ops.map((op, i) => [i, op.create.id, 'SUCCESS', 'CREATE', 'RESOURCE']))
  t.same(job.upstreamInfo, { taskIds: [...state.tasks.keys()] })
  t.same(job.progress.at(-1), { pagesDone: 3, pagesTotal: 3, succeeded: 8, failed: 0 })
  const submitted = job.checkpoints.filter(c => c.taskId !== null)
  t.same(submitted.map(c => [c.chunk, c.taskId]), [...state.tasks.keys()].map((id, i) => [i + 1, id]), 'each task id checkpointed')
  t.match(job.checkpoints.at(-1), { chunkSize: 3, chunk: 4, taskId: null, succeeded: 8, failed: 0 })
})

t.test('ALREADY_EXISTS and NOT_FOUND receipts count as failed without failing the job; order holds across chunks', async t => {
  const { state, adapter } = await setup(t)
  const ops = [
    create(1),
    { action: 'UPSERT', upsert: { id: 'p2', type: 'provider', data: { name: 'Two' } } },
    { action: 'CREATE', create: { type: 'office', data: { name: 'Generated id' } } },
    create(1), // chunk 2: a duplicate of chunk 1's CREATE
    { action: 'DELETE', delete: { id: 'missing', type: 'provider' } },
    { action: 'DELETE', delete: { id: 'p2', type: 'provider' } },
    { action: 'UPSERT', upsert: { id: 'p2', type: 'provider', data: { name: 'Two again' } } },
  ]
  const job = cliniaJob('resources', ops)
  await adapter.run(job.ctx)
  const r = job.parsed()
  t.same(r.map(x => x.status), ['SUCCESS', 'SUCCESS', 'SUCCESS', 'FAILURE', 'FAILURE', 'SUCCESS', 'SUCCESS'])
  t.match(r[3], { index: 3, id: 'p<1>&', error: { code: 409, type: 'ALREADY_EXISTS' } })
  t.match(r[4], { index: 4, id: 'missing', error: { code: 404, type: 'NOT_FOUND' } })
  t.match(r[2], { index: 2, type: 'office', id: /^[0-9A-Za-z]{27}$/ }, 'Clinia generates an id')
  t.same(job.records(), expectedFromTasks(state))
  t.same(job.progress.at(-1), { pagesDone: 3, pagesTotal: 3, succeeded: 5, failed: 2 })
  t.same(state.resources.get('provider/p2'), { name: 'Two again' }, 'DELETE then UPSERT applied in order')
})

t.test('a REJECTED chunk: earlier receipts kept, its receipts recorded, later operations NOT_SENT and never sent', async t => {
  const { state, adapter } = await setup(t)
  const ops = Array.from({ length: 8 }, (_, i) => create(i, i === 4 ? { practiceNumber: 'secret-value' } : {}))
  const job = cliniaJob('resources', ops)
  const err = await adapter.run(job.ctx).catch((e: unknown) => e) as Error & { code: string, upstreamStatus: number }
  t.match(err, { name: 'UpstreamError', code: 'upstream_rejected', upstreamStatus: 400 })
  t.match(err.message, /chunk 2 of 3 was REJECTED .* the 2 operation\(s\) after it were not sent/)
  t.notMatch(err.message, /secret-value|Provider|p</, 'no operation data in the message')

  const [chunk1, chunk2, chunk3] = chunksOf(ops, 3)
  t.equal(state.postsOf(chunk1!), 1)
  t.equal(state.postsOf(chunk2!), 1)
  t.equal(state.postsOf(chunk3!), 0, 'the chunk after the rejected one was never sent')
  t.same([state.stats.submits, state.stats.tasksCreated, state.stats.rejected], [2, 1, 1])

  const r = job.parsed()
  t.same(r.map(x => [x.index, x.status]), [
    [0, 'SUCCESS'], [1, 'SUCCESS'], [2, 'SUCCESS'], [3, 'CANCELLED'], [4, 'FAILURE'], [5, 'CANCELLED'], [6, 'NOT_SENT'], [7, 'NOT_SENT'],
  ])
  t.equal(job.records()[3], '{"index":3,"status":"CANCELLED"}', 'the REJECTED receipts as Clinia wrote them')
  t.match(r[4], { error: { code: 400, type: 'INVALID_ARGUMENT' } })
  t.same(r[6], { index: 6, status: 'NOT_SENT', action: 'CREATE', targetType: 'RESOURCE', type: 'provider', id: 'p<6>&' })
  t.same([...job.pages.keys()], [1, 2, 3])
  t.match(job.progress.findLast(p => p !== undefined), { pagesDone: 2, pagesTotal: 3, succeeded: 3, failed: 3 })

  // A resumed attempt (say the worker died while writing NOT_SENT receipts) sends nothing and fails the same way.
  const again = cliniaJob('resources', ops, { checkpoint: job.checkpoints.at(-1)!, pages: new Map([[1, job.pages.get(1)!], [2, job.pages.get(2)!]]) })
  await t.rejects(adapter.run(again.ctx), { code: 'upstream_rejected', upstreamStatus: 400 })
  t.same(again.pages.get(3), job.pages.get(3), 'NOT_SENT receipts written on resume')
  t.equal(state.stats.submits, 2, 'nothing sent on resume')
})

t.test('more operations than Clinia takes per request: REJECTED with every receipt CANCELLED', async t => {
  const { state, adapter } = await setup(t, { maxOperations: 2 })
  const ops = Array.from({ length: 4 }, (_, i) => create(i))
  const job = cliniaJob('resources', ops)
  await t.rejects(adapter.run(job.ctx), { code: 'upstream_rejected' })
  t.same(job.parsed().map(x => x.status), ['CANCELLED', 'CANCELLED', 'CANCELLED', 'NOT_SENT'])
  t.equal(state.stats.tasksCreated, 0)
})

t.test('crash right after submitting: the resumed job polls the checkpointed task and never resubmits', async t => {
  const { state, make } = await setup(t, { pendingPolls: 3 })
  const ops = Array.from({ length: 7 }, (_, i) => create(i))
  const crash = new Error('worker died')
  // The first attempt dies right after checkpointing chunk 2's task id.
  const first = cliniaJob('resources', ops, { afterCheckpoint: cp => { if (cp.chunk === 2 && cp.taskId !== null) throw crash } })
  await t.rejects(make().run(first.ctx), crash)
  const cp = first.checkpoints.at(-1)!
  t.match(cp, { chunk: 2, taskId: /^bk_/, chunkSize: 3 })
  t.equal(state.stats.tasksCreated, 2)
  t.equal(state.tasks.get(cp.taskId!)?.receipts, null, 'chunk 2 is still pending at Clinia')

  // The next attempt runs with a different CLINIA_MAX_OPERATIONS: the checkpoint's chunk size must win.
  const second = cliniaJob('resources', ops, { checkpoint: cp, pages: first.pages })
  await make({ maxOperations: 5 }).run(second.ctx)
  t.equal(state.stats.tasksCreated, 3, 'only chunk 3 was submitted')
  for (const chunk of chunksOf(ops, 3)) t.equal(state.postsOf(chunk), 1, 'every chunk POSTed exactly once')
  t.same(second.records(), expectedFromTasks(state))
  t.same(second.parsed().map(r => r.index), [0, 1, 2, 3, 4, 5, 6])
  t.same(second.progress.at(-1), { pagesDone: 3, pagesTotal: 3, succeeded: 7, failed: 0 })
})

t.test('relationships: their own endpoint and shape; missing ends fail per operation', async t => {
  const seed = [
    { type: 'provider', id: 'p1', data: { name: 'One' } },
    { type: 'office', id: 'o1', data: { name: 'Office' } },
  ]
  const { state, adapter } = await setup(t, { seed })
  const link = { type: 'worksAt', from: { type: 'provider', id: 'p1' }, to: { type: 'office', id: 'o1' } }
  const ops = [
    { action: 'CREATE', create: { ...link, data: { role: 'Pharmacist' } } },
    { action: 'CREATE', create: link },
    { action: 'UPSERT', upsert: { ...link, from: { type: 'provider', id: 'nobody' } } },
    { action: 'DELETE', delete: { type: 'worksAt', id: 'p1.o1' } },
    { action: 'DELETE', delete: link },
  ]
  const job = cliniaJob('relationships', ops)
  await adapter.run(job.ctx)
  t.same(job.parsed().map(r => [r.index, r.status, r.targetType, r.id, r.error?.type]), [
    [0, 'SUCCESS', 'RELATIONSHIP', 'p1.o1', undefined],
    [1, 'FAILURE', 'RELATIONSHIP', 'p1.o1', 'ALREADY_EXISTS'],
    [2, 'FAILURE', 'RELATIONSHIP', 'nobody.o1', 'NOT_FOUND'],
    [3, 'SUCCESS', 'RELATIONSHIP', 'p1.o1', undefined],
    [4, 'FAILURE', 'RELATIONSHIP', 'p1.o1', 'NOT_FOUND'],
  ])
  t.same([...state.tasks.values()].map(task => task.resource), ['relationships', 'relationships'])
})
