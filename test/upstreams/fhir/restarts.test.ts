/**
 * The FHIR adapter when an export goes away under it, as the SMART reference server's and object stores' answers
 * say (docs/UPSTREAMS.md, FHIR Bulk Data): files that expire (410, 404, an expired signed link's 403), a status URL
 * that vanishes, and a restarted export whose files differ. Each restart is bounded, and no record is stored twice.
 */
import t from 'tap'
import type { FhirCheckpoint } from '../../../src/upstreams/fhir/checkpoint.js'
import { expectedRecords } from '../../../src/upstreams/fhir/simulator/index.js'
import { fakeJob } from '../../helpers/job-context.js'
import { SIM, sameRecords, setup } from './setup.js'

const OBS = { level: 'system' as const, _type: 'Observation' }
const want = (o = {}) => expectedRecords({ ...SIM, ...o }, OBS)

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

t.test('a status URL answering 410 is reported as 410, not 404', async t => {
  const { state, adapter } = await setup(t, { exportTtlMs: 0, goneStatus: 410 }, { maxRestarts: 1 })
  const job = fakeJob('system', { _type: 'Observation' })
  await t.rejects(adapter.run(job.ctx), { code: 'upstream_failed', upstreamStatus: 410, message: /vanished \(its status URL answered 410\)/ })
  t.equal(state.stats.kickOffs, 2)
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
