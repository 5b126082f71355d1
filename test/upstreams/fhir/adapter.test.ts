/** The FHIR adapter against the simulator over loopback HTTP, the engine's side in memory: the plain protocol. */
import t from 'tap'
import type { FhirCheckpoint } from '../../../src/upstreams/fhir/checkpoint.js'
import { expectedRecords } from '../../../src/upstreams/fhir/simulator/index.js'
import { fakeJob } from '../../helpers/job-context.js'
import { SIM, sameRecords, setup } from './setup.js'

t.test('system export: kick-off, a 202 poll, the manifest, every file in order; exact records, the export released', async t => {
  const { state, adapter } = await setup(t, { pollsBeforeReady: 2 })
  const waits: string[] = []
  const job = fakeJob<FhirCheckpoint>('system', { _type: 'Patient,Observation' }, { reportWait: (_w, wait) => { if (wait !== null) waits.push(wait.reason) } })
  await adapter.run(job.ctx)
  const want = expectedRecords(SIM, { level: 'system', _type: 'Patient,Observation' })
  t.equal(want.length, 12 + 36)
  sameRecords(t, job.records(), want, 'system export')
  t.match(state.stats, { kickOffs: 1, badHeaders: 0, statusPolls: 3, manifests: 1, downloads: 6, cancels: 1, withAuthorization: 0 })
  t.ok(waits.some(w => /^the FHIR server's export \(\d+% complete, Please wait\.\.\.\)$/.test(w)), 'X-Progress shown while waiting')
  t.match(job.upstreamInfo, {
    requiresAccessToken: false, files: { output: 6, deleted: 0, error: 0 }, records: { output: 48, deleted: 0, error: 0 }, restarts: 0,
  })
  t.same(job.progress.at(-1), { pagesDone: 6, pagesTotal: 6, percent: 100 })
  t.equal(state.stats.gzipped, 6, 'files were asked for (and came) gzipped')
})

t.test('patient and group exports; an unknown group completes with no records', async t => {
  const { adapter } = await setup(t)
  const patient = fakeJob('patient', { _type: 'Condition,Patient', _since: '2021-01-01T00:00:00Z' })
  await adapter.run(patient.ctx)
  sameRecords(t, patient.records(), expectedRecords(SIM, { level: 'patient', _type: 'Condition,Patient', _since: '2021-01-01T00:00:00Z' }), 'patient')
  const group = fakeJob('group', { groupId: 'FallonHealth' })
  await adapter.run(group.ctx)
  const want = expectedRecords(SIM, { level: 'group', groupId: 'FallonHealth' })
  t.ok(want.length > 0 && !want.some(r => r.includes('"Organization"')), 'a group carries its members\' compartments only')
  sameRecords(t, group.records(), want, 'group')
  const none = fakeJob('group', { groupId: 'NoSuchGroup' })
  await adapter.run(none.ctx)
  t.same(none.records(), [])
  t.match(none.upstreamInfo, { files: { output: 0 }, records: { output: 0 } })
  t.same(none.progress.at(-1), { pagesDone: 0, pagesTotal: 0, percent: 100 })
})

t.test('a _typeFilter is passed through to the server', async t => {
  const { adapter } = await setup(t)
  const job = fakeJob('system', { _type: 'Observation', _typeFilter: 'Observation?status=final' })
  await adapter.run(job.ctx)
  const want = expectedRecords(SIM, { level: 'system', _type: 'Observation', _typeFilter: 'Observation?status=final' })
  t.ok(want.length > 0 && want.length < 36)
  sameRecords(t, job.records(), want, 'filtered')
})

t.test('a kick-off the server refuses fails with its diagnostics, and a stable code', async t => {
  const { state, adapter } = await setup(t)
  const job = fakeJob('system', { _since: '2999-01-01T00:00:00Z' })
  await t.rejects(adapter.run(job.ctx), { code: 'upstream_rejected', upstreamStatus: 400, message: /answered 400: Invalid dateTime .*Future dates are not accepted/ })
  t.equal(state.stats.kickOffs, 1)
  const unknown = fakeJob('system', { _type: 'Medication' })
  await t.rejects(adapter.run(unknown.ctx), { code: 'upstream_rejected', message: /"Medication" is not available/ })
})

t.test('pages are cut at 1000 records within a file, and resume mid-file skips the stored lines', async t => {
  const { state, adapter } = await setup(t, { patients: 400, pageSize: 2500 })
  const want = expectedRecords({ ...SIM, patients: 400, pageSize: 2500 }, { level: 'system', _type: 'Observation' })
  t.equal(want.length, 1200)
  // The first attempt dies right after its first page (1000 lines of the one file) is stored.
  const pages = new Map<number, readonly string[]>()
  const first = fakeJob<FhirCheckpoint>('system', { _type: 'Observation' }, {
    pages,
    afterCheckpoint: (_cp, at) => { if (at.page === 1) throw new Error('crash') },
  })
  await t.rejects(adapter.run(first.ctx), /crash/)
  const cp = first.checkpoints.at(-1) as FhirCheckpoint
  t.match(cp, { file: 0, line: 1000, nextPage: 2 })
  const second = fakeJob<FhirCheckpoint>('system', { _type: 'Observation' }, { pages, checkpoint: cp })
  await adapter.run(second.ctx)
  sameRecords(t, second.records(), want, 'resumed')
  t.same([...pages].map(([p, r]) => [p, r.length]), [[1, 1000], [2, 200]])
  t.equal(state.stats.kickOffs, 1, 'the resumed job went on with the same export')
})

t.test('pages cut by size: a resume after any page loses and repeats no record', async t => {
  // maxPageBytes = 1600 - 1000 = 600: a few Observations per page, every page cut by its size.
  const limits = { limits: { maxBytesInFlight: 1600, maxRecordBytes: 1000 } }
  const want = expectedRecords(SIM, { level: 'system', _type: 'Observation' })
  const { adapter } = await setup(t, {}, {}, limits)
  const whole = fakeJob<FhirCheckpoint>('system', { _type: 'Observation' })
  await adapter.run(whole.ctx)
  sameRecords(t, whole.records(), want, 'one attempt')
  const pageCount = whole.pages.size
  t.ok(pageCount > 6, `pages were cut by size (${pageCount} pages for 36 records)`)
  for (let crashAt = 1; crashAt < pageCount; crashAt++) {
    const pages = new Map<number, readonly string[]>()
    const first = fakeJob<FhirCheckpoint>('system', { _type: 'Observation' }, { pages, afterCheckpoint: (_cp, at) => { if (at.page === crashAt) throw new Error('crash') } })
    await t.rejects(adapter.run(first.ctx), /crash/)
    const second = fakeJob<FhirCheckpoint>('system', { _type: 'Observation' }, { pages, checkpoint: first.checkpoints.at(-1) as FhirCheckpoint })
    await adapter.run(second.ctx)
    sameRecords(t, second.records(), want, `resumed after page ${crashAt}`)
  }
})

t.test('the final checkpoint keeps no file URL (signed links are credentials)', async t => {
  const { adapter } = await setup(t)
  const job = fakeJob<FhirCheckpoint>('system', { _type: 'Patient' })
  await adapter.run(job.ctx)
  const last = job.checkpoints.at(-1) as FhirCheckpoint
  t.equal(last.manifest?.files.length, 2)
  t.notMatch(JSON.stringify(last), /bulkfiles/, 'no file URL')
  t.match(last, { file: 2 })
  t.match(job.checkpoints.at(-2), { manifest: { files: [{ url: /bulkfiles/ }] } }, 'kept while files were read')
})
