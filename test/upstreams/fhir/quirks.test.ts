/**
 * The FHIR adapter under each quirk of the SMART reference server (docs/UPSTREAMS.md, FHIR Bulk Data), as simulator
 * settings: transient 500s, 429s with an absolute epoch, absurd or dated Retry-After, the request limiter, deleted
 * and error entries, resume from a checkpoint, cancel, broken and corrupt downloads. Exports that go away under the
 * adapter are restarts.test.ts.
 */
import t from 'tap'
import { pino } from 'pino'
import { JobCancelledError } from '../../../src/domain/errors.js'
import type { FhirCheckpoint } from '../../../src/upstreams/fhir/checkpoint.js'
import { expectedRecords, fhirSimulator, FhirSimulatorState, planExport } from '../../../src/upstreams/fhir/simulator/index.js'
import { fhirAdapter } from '../../../src/upstreams/fhir/adapter.js'
import { wrapEntry } from '../../../src/upstreams/fhir/file-reader.js'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { serveSimulator } from '../../../src/upstreams/simulator-kit/server.js'
import { WireFaults } from '../../../src/upstreams/simulator-kit/wire-faults.js'
import { fakeJob } from '../../helpers/job-context.js'
import { SIM, sameRecords, setup } from './setup.js'

const OBS = { level: 'system' as const, _type: 'Observation' }
const want = (o = {}) => expectedRecords({ ...SIM, ...o }, OBS)

t.test('a transient 500 on the first polls (twice, as the SMART server can) is asked again', async t => {
  const { state, adapter } = await setup(t, { transientPolls: 2 })
  const job = fakeJob('system', { _type: 'Observation' })
  await adapter.run(job.ctx)
  sameRecords(t, job.records(), want(), 'after transient errors')
  t.match(state.stats, { transientErrors: 2, kickOffs: 1 })
})

t.test('429 with an absolute epoch in ms, then in seconds, is waited out (clamped), not failed', async t => {
  const { state, adapter } = await setup(t, { throttleBlockMs: 40 }, { maxWaitMs: 15 })
  state.throttleNext(1)
  const lines: string[] = []
  const job = fakeJob('system', { _type: 'Observation' })
  const ctx = { ...job.ctx, log: pino({ level: 'info' }, { write: (l: string) => { lines.push(l) } }) }
  await adapter.run(ctx)
  sameRecords(t, job.records(), want(), 'after 429s')
  t.ok(state.stats.throttled >= 2, `the block lasted several requests (${state.stats.throttled})`)
  const clamps = lines.filter(l => l.includes('clamped'))
  t.equal(clamps.length, 1, 'the clamp is logged once per job')
  t.match(clamps[0], /"form":"epoch-(ms|s)"/)
})

t.test('an absurd Retry-After (hours) is clamped to the maximum; an HTTP date is honoured', async t => {
  // What each poll waits, as the job reports it, and the clamp's one log line: a date of 1–2 s ahead is waited for
  // whole under a maximum of 3 s; seven hours are cut to 30 ms; no header at all falls back (clamped, not logged).
  const cases = [
    { retryAfter: 'absurd', retryAfterSeconds: 1, maxWaitMs: 30, waits: [25, 35], clamp: { form: 'seconds', clamped: 'down', waitMs: 30 } },
    { retryAfter: 'date', retryAfterSeconds: 2, maxWaitMs: 3000, waits: [900, 2100], clamp: null },
    { retryAfter: 'none', retryAfterSeconds: 1, maxWaitMs: 30, waits: [25, 35], clamp: null },
  ] as const
  for (const c of cases) {
    const { state, adapter } = await setup(t, { retryAfter: c.retryAfter, retryAfterSeconds: c.retryAfterSeconds, pollsBeforeReady: c.retryAfter === 'date' ? 1 : 3 }, { maxWaitMs: c.maxWaitMs })
    const waits: number[] = []
    const lines: string[] = []
    const job = fakeJob('system', { _type: 'Observation' }, { reportWait: (w, wait) => { if (w === 'fhir-export' && wait !== null) waits.push(wait.until.getTime() - Date.now()) } })
    const ctx = { ...job.ctx, log: pino({ level: 'info' }, { write: (l: string) => { lines.push(l) } }) }
    await adapter.run(ctx)
    sameRecords(t, job.records(), want(), c.retryAfter)
    t.ok(waits.length > 0 && waits.every(ms => ms >= c.waits[0] && ms <= c.waits[1]), `${c.retryAfter}: waits ${waits.join(', ')} ms within ${c.waits.join('–')}`)
    const clamps = lines.filter(l => l.includes('clamped')).map(l => JSON.parse(l) as Record<string, unknown>)
    if (c.clamp === null) t.same(clamps, [], `${c.retryAfter}: no clamp logged`)
    else t.match(clamps, [c.clamp], `${c.retryAfter}: the clamp logged once, with the form read`)
    t.equal(state.stats.throttled, 0)
  }
})

t.test('deleted and error entries are kept after the output, wrapped, and counted', async t => {
  const o = { deletedPercent: 30, someFilesFail: true }
  const { adapter } = await setup(t, o)
  const params = { _type: 'Observation,Patient', _since: '2019-06-01T00:00:00Z' }
  const job = fakeJob('system', params)
  await adapter.run(job.ctx)
  const expected = expectedRecords({ ...SIM, ...o }, { level: 'system', ...params })
  sameRecords(t, job.records(), expected, 'output, then deleted, then error')
  const kinds = job.records().map(r => (JSON.parse(r) as { manifestArray?: string }).manifestArray ?? 'output')
  t.same(kinds, [...kinds].sort((a, b) => ['output', 'deleted', 'error'].indexOf(a) - ['output', 'deleted', 'error'].indexOf(b)), 'in array order')
  const counts = { output: kinds.filter(k => k === 'output').length, deleted: kinds.filter(k => k === 'deleted').length, error: kinds.filter(k => k === 'error').length }
  t.ok(counts.deleted > 0 && counts.error > 0)
  t.match(job.upstreamInfo, { records: counts })
  const deleted = JSON.parse(job.records()[counts.output] as string)
  t.match(deleted, { manifestArray: 'deleted', type: 'Bundle', resource: { resourceType: 'Bundle', entry: [{ request: { method: 'DELETE' } }] } })
})

t.test('a resumed job downloads no file it already stored', async t => {
  const { state, adapter } = await setup(t)
  const pages = new Map<number, readonly string[]>()
  const first = fakeJob<FhirCheckpoint>('system', { _type: 'Observation' }, { pages, afterCheckpoint: (_cp, at) => { if (at.page === 2) throw new Error('crash') } })
  await t.rejects(adapter.run(first.ctx), /crash/)
  t.equal(state.stats.downloads, 2)
  const second = fakeJob<FhirCheckpoint>('system', { _type: 'Observation' }, { pages, checkpoint: first.checkpoints.at(-1) as FhirCheckpoint })
  await adapter.run(second.ctx)
  sameRecords(t, second.records(), want(), 'resumed')
  t.equal(state.stats.downloads, 4, 'files 1 and 2 were not read again')
  t.same(Object.values(state.stats.downloadsByFile), [1, 1, 1, 1], 'each file downloaded once')
  t.equal(state.stats.kickOffs, 1)
})

t.test('a cancelled job DELETEs its export', async t => {
  const { state, adapter } = await setup(t, { pollsBeforeReady: 1000, retryAfterSeconds: 0.01 })
  const job = fakeJob('system', { _type: 'Observation' })
  const run = adapter.run(job.ctx)
  while (state.stats.statusPolls < 2) await new Promise(resolve => setTimeout(resolve, 5))
  job.controller.abort(new JobCancelledError('cancelled'))
  await t.rejects(run, JobCancelledError)
  t.equal(state.stats.cancels, 1)
  t.equal([...state.exports.values()][0]?.state, 'cancelled')
})

t.test('a job cancelled while its kick-off is under way reads the answer and DELETEs the export it started', async t => {
  const { state, adapter } = await setup(t, { kickOffDelayMs: 300, pollsBeforeReady: 1000 })
  const job = fakeJob('system', { _type: 'Observation' })
  const run = adapter.run(job.ctx)
  while (state.exports.size === 0) await new Promise(resolve => setTimeout(resolve, 5))
  job.controller.abort(new JobCancelledError('cancelled'))
  await t.rejects(run, JobCancelledError)
  t.equal(state.stats.kickOffs, 1)
  t.equal(state.stats.statusPolls, 0, 'never polled')
  t.equal(state.stats.cancels, 1, 'the export started by the kick-off was released')
  t.equal([...state.exports.values()][0]?.state, 'cancelled')
})

t.test('a job cancelled before its kick-off is sent starts no export', async t => {
  const { state, adapter } = await setup(t)
  const job = fakeJob('system', { _type: 'Observation' })
  job.controller.abort(new JobCancelledError('cancelled'))
  await t.rejects(adapter.run(job.ctx), JobCancelledError)
  t.equal(state.stats.kickOffs, 0)
  t.equal(state.stats.cancels, 0)
})

t.test('an unexpected error leaves the export for the next attempt, unless it was the last attempt', async t => {
  for (const lastAttempt of [false, true]) {
    const { state, adapter } = await setup(t)
    // The database went away while the job stored its first page: not the upstream's doing.
    const job = fakeJob('system', { _type: 'Observation' }, { refusePages: 'connection terminated unexpectedly', lastAttempt })
    await t.rejects(adapter.run(job.ctx), /connection terminated/)
    t.equal(state.stats.cancels, lastAttempt ? 1 : 0, lastAttempt ? 'last attempt: the export is DELETEd' : 'attempts left: the export is kept for the next one')
    t.equal([...state.exports.values()][0]?.state, lastAttempt ? 'cancelled' : 'ready')
  }
})

t.test('an export in progress past FHIR_EXPORT_TIMEOUT_SECONDS fails with upstream_timeout and is deleted', async t => {
  const { state, adapter } = await setup(t, { pollsBeforeReady: 1000 }, { exportTimeoutMs: 60 })
  const job = fakeJob('system', { _type: 'Observation' })
  await t.rejects(adapter.run(job.ctx), { code: 'upstream_timeout' })
  t.equal(state.stats.cancels, 1)
})

t.test('status polls back off as an export runs long: a low request limit on kick-off and status is never tripped', async t => {
  // The SMART limiter (60 requests a minute, then a block with an epoch Retry-After), at a sixtieth of the time:
  // 30 requests per second against an export that takes 3 s, polled at an advertised Retry-After of 20 ms.
  const limiter = { requestsPerMinute: 30, limiterWindowMs: 1000, limiterBlockMs: 500 }
  const { state, adapter } = await setup(t, { ...limiter, buildMs: 3000, pollsBeforeReady: 1, retryAfterSeconds: 0.02 }, { minWaitMs: 20, maxWaitMs: 2000 })
  const job = fakeJob('system', { _type: 'Observation' })
  await adapter.run(job.ctx)
  sameRecords(t, job.records(), want(), 'after a long export')
  t.equal(state.stats.throttled, 0, `the limit was never reached (${state.stats.statusPolls} polls)`)
  t.ok(state.stats.statusPolls < 60, 'far fewer polls than the advertised Retry-After asks for')
})

t.test('the simulator\'s request limit answers 429 with an epoch in ms, then in s, until its block ends', async t => {
  const { simulator, state } = await setup(t, { requestsPerMinute: 2, limiterBlockMs: 60_000 })
  const kickOff = () => fetch(`${simulator.url}/$export?_type=Patient`, { headers: { accept: 'application/fhir+json', prefer: 'respond-async' } })
  t.equal((await kickOff()).status, 202)
  t.equal((await kickOff()).status, 202)
  const tripped = await kickOff()
  t.equal(tripped.status, 429)
  const ms = Number(tripped.headers.get('retry-after'))
  t.ok(ms > Date.now() + 50_000 && ms < Date.now() + 61_000, 'epoch ms, the block\'s end')
  const after = await kickOff()
  t.equal(after.status, 429)
  t.equal(Number(after.headers.get('retry-after')), Math.ceil(ms / 1000), 'then epoch seconds')
  t.equal(state.stats.kickOffs, 2)
  const file = await fetch(`${simulator.url}/bulkfiles/x/2.Patient.ndjson`)
  t.equal(file.status, 404, 'downloads are not limited')
})

t.test('a file that keeps breaking off but gets further each time is read to its end: only attempts without progress count', async t => {
  // Pages of ~2 records (a 600-byte bound), and the k-th download of a file cut after 5·k lines.
  const { state, adapter } = await setup(t, { pageSize: 100, breakEveryLines: 5 }, {}, { limits: { maxBytesInFlight: 1600, maxRecordBytes: 1000 } })
  const job = fakeJob('system', { _type: 'Observation' })
  await adapter.run(job.ctx)
  sameRecords(t, job.records(), want({ pageSize: 100 }), 'every line once')
  t.ok(state.stats.downloads > 3, `more downloads (${state.stats.downloads}) than FHIR_ATTEMPTS, each one further`)
  t.equal(state.stats.kickOffs, 1)
  // Without progress the third break still fails the job.
  const limits = { maxBytesInFlight: 1600, maxRecordBytes: 1000 }
  const { state: stuck, adapter: stuckAdapter } = await setup(t, { pageSize: 100, breakEveryLines: 1000 }, {}, { limits })
  stuck.breakDownloadsAt(1)
  await t.rejects(stuckAdapter.run(fakeJob('system', { _type: 'Observation' }).ctx), { code: 'upstream_unavailable' })
  t.equal(stuck.stats.downloads, 3)
})

t.test('a kick-off whose connection resets after it was sent is not sent again: no second export', async t => {
  const wire = new WireFaults({ seed: 1 })
  const state = new FhirSimulatorState(SIM)
  const server = await serveSimulator(fhirSimulator, state, { wireFaults: wire })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => { await client.close(); await server.close() })
  const adapter = fhirAdapter({ baseUrl: server.url, auth: null, minWaitMs: 2, maxWaitMs: 20, maxRestarts: 3, exportTimeoutMs: 60_000 }, client)
  wire.arm('reset', 1)
  await t.rejects(adapter.run(fakeJob('system', { _type: 'Observation' }).ctx), { code: 'upstream_unavailable' })
  t.equal(state.stats.kickOffs, 1, 'one export started, not two')
  t.equal(wire.applied.reset, 1)
})

t.test('a corrupt gzip body is invalid_upstream_response at once, not a broken connection read again', async t => {
  const { state, adapter } = await setup(t, { corruptGzip: true })
  await t.rejects(adapter.run(fakeJob('system', { _type: 'Observation' }).ctx), { code: 'invalid_upstream_response', message: /not valid gzip/ })
  t.equal(state.stats.downloads, 1, 'not downloaded again')
})

t.test('a deleted or error line whose wrapper takes it past UPSTREAM_MAX_RECORD_BYTES is refused like any record too large', async t => {
  const o = { deletedPercent: 100 } // every resource listed as deleted: the job stores wrapped lines only
  const params = { _type: 'Patient', _since: '2019-06-01T00:00:00Z' }
  const files = planExport({ ...SIM, ...o }, { level: 'system', ...params })
  if (!Array.isArray(files)) throw new Error(files.error)
  const longest = Math.max(...files.flatMap(f => f.lines.map(l => Buffer.byteLength(l))))
  const overhead = wrapEntry({ array: 'deleted', type: 'Bundle' }, Buffer.alloc(0)).length
  const fits = await setup(t, o, {}, { limits: { maxRecordBytes: longest + overhead } })
  const job = fakeJob('system', params)
  await fits.adapter.run(job.ctx)
  t.ok(job.records().length > 0 && job.records().every(r => Buffer.byteLength(r) <= longest + overhead), 'wrapped records within the limit')
  const tight = await setup(t, o, {}, { limits: { maxRecordBytes: longest + overhead - 1 } })
  await t.rejects(tight.adapter.run(fakeJob('system', params).ctx), { code: 'upstream_response_too_large' })
})

t.test('simulator: a bad % escape in _typeFilter is a 400 OperationOutcome, not a 500', async t => {
  const { simulator } = await setup(t)
  const res = await fetch(`${simulator.url}/$export?_typeFilter=${encodeURIComponent('Observation?code=%E0%A4%A')}`, { headers: { accept: 'application/fhir+json', prefer: 'respond-async' } })
  t.equal(res.status, 400)
  t.match(await res.json(), { resourceType: 'OperationOutcome', issue: [{ code: 'invalid' }] })
})
