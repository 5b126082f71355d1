/**
 * The FHIR adapter under each quirk of the SMART reference server (shared/peers/README.md), as simulator settings:
 * transient 500s, expired and missing files, vanished exports, 429s with an absolute epoch, absurd or dated
 * Retry-After, deleted and error entries, resume from a checkpoint, and cancel.
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

t.test('files answering 410 (expired) start a new export; the job ends with each record once', async t => {
  const { state, adapter } = await setup(t)
  state.expireFilesNext(1)
  const job = fakeJob('system', { _type: 'Observation' })
  await adapter.run(job.ctx)
  sameRecords(t, job.records(), want(), 'after one restart')
  t.match(state.stats, { kickOffs: 2, downloadsRefused: 1, downloads: 4 })
  t.match(job.upstreamInfo, { restarts: 1 })
})

t.test('a file expiring mid-export starts a new export that goes on from the file being read', async t => {
  const { state, adapter } = await setup(t)
  let saved = 0
  // After the first file's page, the second file's download answers 410.
  const job = fakeJob<FhirCheckpoint>('system', { _type: 'Observation' }, { afterCheckpoint: (_cp, at) => { if (at.page === 1 && ++saved === 1) state.expireFilesNext(1) } })
  await adapter.run(job.ctx)
  sameRecords(t, job.records(), want(), 'no record twice, none lost')
  t.equal(state.stats.kickOffs, 2)
  t.equal(state.stats.downloads, 4, 'the stored file was not downloaded again')
})

t.test('every download expiring (file_expired) fails after FHIR_MAX_EXPORT_RESTARTS restarts with upstream_failed', async t => {
  const { state, adapter } = await setup(t, { fileExpired: true }, { maxRestarts: 2 })
  const job = fakeJob('system', { _type: 'Observation' })
  await t.rejects(adapter.run(job.ctx), { code: 'upstream_failed', upstreamStatus: 410, message: /files expired \(410\) 3 time\(s\).*2 time\(s\)/ })
  t.equal(state.stats.kickOffs, 3)
})

t.test('a status URL answering 404 (the export vanished) starts a new export, bounded', async t => {
  const { state, adapter } = await setup(t, { exportTtlMs: 0 }, { maxRestarts: 1 })
  const job = fakeJob('system', { _type: 'Observation' })
  await t.rejects(adapter.run(job.ctx), { code: 'upstream_failed', upstreamStatus: 404, message: /vanished/ })
  t.equal(state.stats.kickOffs, 2)
})

t.test('404 on one file download restarts once, then completes', async t => {
  const { state, adapter } = await setup(t)
  state.missingFilesNext(1)
  const job = fakeJob('system', { _type: 'Observation' })
  await adapter.run(job.ctx)
  sameRecords(t, job.records(), want(), 'after a 404 file')
  t.equal(state.stats.kickOffs, 2)
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

t.test('a file answering 403 where the token plays no part (an expired signed link) starts a new export, like 410', async t => {
  const { state, adapter } = await setup(t)
  state.forbidFilesNext(1)
  const job = fakeJob('system', { _type: 'Observation' })
  await adapter.run(job.ctx)
  sameRecords(t, job.records(), want(), 'after one restart')
  t.match(state.stats, { kickOffs: 2, downloadsRefused: 1 })
  t.match(job.upstreamInfo, { restarts: 1 })
  const { state: always, adapter: bounded } = await setup(t, {}, { maxRestarts: 1 })
  always.forbidFilesNext(100)
  await t.rejects(bounded.run(fakeJob('system', { _type: 'Observation' }).ctx), { code: 'upstream_failed', upstreamStatus: 403, message: /files expired \(403\)/ })
})

t.test('a file answering 403 on the server\'s own origin with the token is a refusal, not an expiry', async t => {
  const { generateKeyPair, exportJWK } = await import('jose')
  const { parseSigningKey } = await import('../../../src/upstreams/fhir/jwk.js')
  const { publicKey, privateKey } = await generateKeyPair('ES384', { extractable: true })
  const key = parseSigningKey(JSON.stringify({ ...await exportJWK(privateKey), kid: 'k', alg: 'ES384' }))
  if (typeof key === 'string') throw new Error(key)
  const { state, adapter } = await setup(t, { secure: true, clients: { c: { ...await exportJWK(publicKey), kid: 'k', alg: 'ES384' } } }, { auth: { clientId: 'c', key, scope: 'system/*.read' } })
  state.forbidFilesNext(1)
  await t.rejects(adapter.run(fakeJob('system', { _type: 'Observation' }).ctx), { code: 'upstream_unauthorized', upstreamStatus: 403 })
  t.equal(state.stats.kickOffs, 1)
})

t.test('a restarted export whose file being read has other lines than the ones stored fails with upstream_failed', async t => {
  const big = { patients: 400, pageSize: 2500 }
  for (const reorderReexports of [false, true]) {
    const { state, adapter } = await setup(t, { ...big, reorderReexports })
    const pages = new Map<number, readonly string[]>()
    // The first attempt stores 1000 lines of the one file and dies; the file has expired when the next one reads it.
    const first = fakeJob<FhirCheckpoint>('system', { _type: 'Observation' }, { pages, afterCheckpoint: (_cp, at) => { if (at.page === 1) throw new Error('crash') } })
    await t.rejects(adapter.run(first.ctx), /crash/)
    const cp = first.checkpoints.at(-1) as FhirCheckpoint
    t.match(cp, { file: 0, line: 1000, lineHash: /^[0-9a-f]{64}$/ })
    state.expireFilesNext(1)
    const second = fakeJob<FhirCheckpoint>('system', { _type: 'Observation' }, { pages, checkpoint: cp })
    if (reorderReexports) {
      await t.rejects(adapter.run(second.ctx), { code: 'upstream_failed', message: /no longer starts with the 1000 lines/ }, 'the new export\'s lines differ')
    } else {
      await adapter.run(second.ctx)
      sameRecords(t, second.records(), expectedRecords({ ...SIM, ...big }, OBS), 'the same lines: the job goes on')
    }
    t.equal(state.stats.kickOffs, 2)
  }
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

t.test('a status URL answering 410 is reported as 410, not 404', async t => {
  const { state, adapter } = await setup(t, { exportTtlMs: 0, goneStatus: 410 }, { maxRestarts: 1 })
  const job = fakeJob('system', { _type: 'Observation' })
  await t.rejects(adapter.run(job.ctx), { code: 'upstream_failed', upstreamStatus: 410, message: /vanished \(its status URL answered 410\)/ })
  t.equal(state.stats.kickOffs, 2)
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

t.test('an export replaced after its files expired is DELETEd (best effort); a vanished one is not asked again', async t => {
  const { state, adapter } = await setup(t)
  state.expireFilesNext(1)
  const job = fakeJob('system', { _type: 'Observation' })
  await adapter.run(job.ctx)
  sameRecords(t, job.records(), want(), 'after one restart')
  const [old, replacement] = [...state.exports.values()]
  t.equal(old?.state, 'cancelled', 'the replaced export was released')
  t.equal(replacement?.state, 'cancelled', 'the one read, once done')
  t.equal(state.stats.cancels, 2)
  const vanished = await setup(t, { exportTtlMs: 0 }, { maxRestarts: 1 })
  await t.rejects(vanished.adapter.run(fakeJob('system', { _type: 'Observation' }).ctx), { code: 'upstream_failed' })
  t.equal(vanished.state.stats.cancels, 0, 'no DELETE of a status URL that answered 404')
})

t.test('simulator: a bad % escape in _typeFilter is a 400 OperationOutcome, not a 500', async t => {
  const { simulator } = await setup(t)
  const res = await fetch(`${simulator.url}/$export?_typeFilter=${encodeURIComponent('Observation?code=%E0%A4%A')}`, { headers: { accept: 'application/fhir+json', prefer: 'respond-async' } })
  t.equal(res.status, 400)
  t.match(await res.json(), { resourceType: 'OperationOutcome', issue: [{ code: 'invalid' }] })
})
