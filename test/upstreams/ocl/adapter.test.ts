/** The OCL adapter's export jobs against the simulator over loopback HTTP, the engine's side in memory. */
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { oclAdapter, type OclSettings } from '../../../src/upstreams/ocl/adapter.js'
import type { OclExportCheckpoint } from '../../../src/upstreams/ocl/export-job.js'
import {
  DEFAULT_SOURCES, SANDBOX_OCL_TOKEN, expectedExport, startOclSimulator, type OclSimulatorOptions, type SimSource,
} from '../../../src/upstreams/ocl/simulator/index.js'
import { fakeJob } from '../../helpers/job-context.js'

const CIEL = { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL' } as const
const JDOE = { ownerType: 'users', owner: 'jdoe', source: 'ClinicTerms' } as const

/** A simulator, an adapter pointed at it with tiny waits, and a temp folder to watch; all removed at the end. */
async function setup (t: Test, sim: OclSimulatorOptions = {}, settings: Partial<OclSettings> = {}) {
  const simulator = await startOclSimulator({ exportPolls: 2, retryAfterSeconds: 0, ...sim })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  const tempDir = await mkdtemp(join(tmpdir(), 'ocl-adapter-test-'))
  t.teardown(async () => {
    await client.close()
    await simulator.close()
    await rm(tempDir, { recursive: true, force: true })
  })
  const adapter = oclAdapter({ baseUrl: simulator.url, token: SANDBOX_OCL_TOKEN, pollInitialMs: 1, pollMaxMs: 4, tempDir, ...settings }, client)
  return { simulator, state: simulator.state, adapter, tempDir }
}

/** An export job on the engine's side, in memory (test/helpers/job-context.ts). */
const exportJob = (params: Record<string, unknown>, checkpoint: OclExportCheckpoint | null = null) =>
  fakeJob<OclExportCheckpoint>('export', params, { checkpoint })

/** Exact text equality of two long record lists, without a slow deep diff. */
function sameRecords (t: Test, got: readonly string[], want: readonly string[], message: string): void {
  t.equal(got.length, want.length, `${message}: ${want.length} records`)
  t.equal(got.findIndex((r, i) => r !== want[i]), -1, `${message}: same text, same order`)
}

const digest = (records: readonly string[]): string => {
  const hash = createHash('sha256')
  for (const r of records) hash.update(r).update('\n')
  return hash.digest('hex')
}

const exported = (version: string, target: { ownerType: string, owner: string, source: string } = CIEL, options = {}) =>
  expectedExport(options, { ...target, version })

t.test('204 → POST 202 → 208… → 302 → download: exact records in file order, lastUpdated kept', async t => {
  const { state, adapter, tempDir } = await setup(t, { exportPolls: 3 })
  const job = exportJob({ ...CIEL, version: 'v2024-01-15' })
  await adapter.run(job.ctx)
  const want = exported('v2024-01-15')
  sameRecords(t, job.records(), want, 'export')
  const types = job.records().map(r => JSON.parse(r).type as string)
  t.equal(types.lastIndexOf('Concept') + 1, types.indexOf('Mapping'), 'concepts, then mappings')
  t.same([...job.pages].map(([page, records]) => [page, records.length]), [[1, 1000], [2, 1000], [3, 1000], [4, want.length - 3000]])
  t.match(state.stats, { exportGets: 1 + 3 + 1, exportPosts: 1, exportsCreated: 1, linksIssued: 1, downloads: 1, versionLookups: 0 })
  t.equal(state.stats.signedWithAuth, 0, 'the OCL token never went to the signed link')
  t.same(job.upstreamInfo, { version: 'v2024-01-15', lastUpdated: '2024-01-15T10:00:00', lastUpdatedTimezone: 'America/New_York' })
  t.same(job.checkpoints[0], { kind: 'export', version: 'v2024-01-15', pagesSaved: 0, lastPageDigest: null }, 'the version is pinned first')
  t.same(job.checkpoints.at(-1), { kind: 'export', version: 'v2024-01-15', pagesSaved: 4, lastPageDigest: digest(want.slice(3000)) })
  const percents = job.progress.slice(1).map(p => p?.percent as number)
  t.same(percents, [...percents].sort((a, b) => a - b), 'progress never goes back')
  t.same(job.progress.at(-1), { pagesDone: 4, pagesTotal: 4, percent: 100 })
  t.same(await readdir(tempDir), [], 'the spooled zip is deleted')
})

t.test('version "latest" is the newest released one; an explicit version is read as given', async t => {
  const { state, adapter } = await setup(t)
  const latest = exportJob({ ...CIEL, version: 'latest' })
  await adapter.run(latest.ctx)
  t.equal(latest.upstreamInfo.version, 'v2024-01-15', 'the newer draft is not released')
  sameRecords(t, latest.records(), exported('v2024-01-15'), 'latest')
  t.equal(state.stats.versionLookups, 1)
  const older = exportJob({ ...CIEL, version: 'v2023-10-02' })
  await adapter.run(older.ctx)
  sameRecords(t, older.records(), exported('v2023-10-02'), 'an older version')
  t.equal(state.stats.versionLookups, 1, 'no lookup for an explicit version')
  const mine = exportJob({ ...JDOE })
  await adapter.run(mine.ctx)
  sameRecords(t, mine.records(), exported('v1.0', JDOE), 'a user\'s private source, version defaulting to latest')
})

t.test('POST meets 409 (already queued) or 303 (exists) after a stale 204', async t => {
  const { state, adapter } = await setup(t, { exportPolls: 2 })
  state.seedExport(JDOE, 'v1.0', 'queued')
  state.staleNoExport(1)
  const queued = exportJob({ ...JDOE, version: 'v1.0' })
  await adapter.run(queued.ctx)
  sameRecords(t, queued.records(), exported('v1.0', JDOE), '409 branch')
  t.match(state.stats, { exportPosts: 1, exportsCreated: 0, exportGets: 1 + 2 + 1 })

  state.reset()
  state.seedExport(JDOE, 'v1.0', 'ready')
  state.staleNoExport(1)
  const exists = exportJob({ ...JDOE, version: 'v1.0' })
  await adapter.run(exists.ctx)
  sameRecords(t, exists.records(), exported('v1.0', JDOE), '303 branch')
  t.match(state.stats, { exportPosts: 1, exportsCreated: 0, exportGets: 2, downloads: 1 })
})

t.test('older servers: a 303, a 200 with the zip itself, a 200 with an exportURL header', async t => {
  for (const readyMode of ['303', 'zip200', 'exportUrl200'] as const) {
    const { state, adapter } = await setup(t, { readyMode })
    const job = exportJob({ ...JDOE })
    await adapter.run(job.ctx)
    sameRecords(t, job.records(), exported('v1.0', JDOE), readyMode)
    t.same(job.upstreamInfo, { version: 'v1.0', lastUpdated: '2024-05-20T06:30:00', lastUpdatedTimezone: 'America/New_York' }, `${readyMode}: lastUpdated under either header name`)
    t.match(state.stats, { downloads: 1, linksIssued: readyMode === 'zip200' ? 0 : 1, signedWithAuth: 0 })
  }
})

t.test('the signed link refuses the OCL token: the adapter does not send it (and the refusal is real)', async t => {
  const { simulator, state, adapter } = await setup(t)
  const job = exportJob({ ...JDOE })
  await adapter.run(job.ctx)
  t.equal(job.records().length, exported('v1.0', JDOE).length)
  t.match(state.stats, { downloads: 1, signedWithAuth: 0, downloadsRefused: 0 })

  // Negative control: the same kind of link, fetched the way a careless client would, is refused.
  const auth = { authorization: `Token ${SANDBOX_OCL_TOKEN}` }
  const offered = await fetch(`${simulator.url}/users/jdoe/sources/ClinicTerms/v1.0/export/`, { headers: auth, redirect: 'manual' })
  const refused = await fetch(offered.headers.get('location') as string, { headers: auth })
  t.equal(refused.status, 403)
  t.equal(state.stats.signedWithAuth, 1)
})

t.test('a refused download link is replaced by a fresh one, a bounded number of times', async t => {
  const { state, adapter, tempDir } = await setup(t, {}, { maxDownloadAttempts: 2 })
  state.refuseDownloads(1)
  const job = exportJob({ ...JDOE })
  await adapter.run(job.ctx)
  sameRecords(t, job.records(), exported('v1.0', JDOE), 'after one refused link')
  t.match(state.stats, { linksIssued: 2, downloadsRefused: 1, downloads: 1 })

  state.refuseDownloads(5)
  const err = await adapter.run(exportJob({ ...JDOE }).ctx).catch((e: unknown) => e)
  t.match(err, { code: 'upstream_failed', upstreamStatus: 403, message: /download link was refused \(403\) 2 time/ })
  t.notMatch(String((err as Error).message), /Signature|signed/, 'the link is not in the message')
  t.same(await readdir(tempDir), [])
})

t.test('an export that stays 208 fails with upstream_timeout after maxPolls', async t => {
  const { state, adapter, tempDir } = await setup(t, { exportPolls: 1000 }, { maxPolls: 3 })
  await t.rejects(adapter.run(exportJob({ ...JDOE }).ctx), { code: 'upstream_timeout', message: /after 3 polls/ })
  t.equal(state.stats.exportGets, 1 + 3, 'one 204, then three 208s')
  t.same(await readdir(tempDir), [])
})

t.test('an abort mid-download rejects with its reason and deletes the partial file', async t => {
  const { state, adapter, tempDir } = await setup(t, { stallDownloadAfterBytes: 100_000 })
  const job = exportJob({ ...CIEL })
  const run = adapter.run(job.ctx)
  const partial = async (): Promise<number> => {
    const [folder] = await readdir(tempDir)
    if (folder === undefined) return 0
    const [file] = await readdir(join(tempDir, folder))
    return file === undefined ? 0 : (await stat(join(tempDir, folder, file))).size
  }
  for (let i = 0; i < 400 && await partial() === 0; i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.ok(await partial() > 0, 'the download had started writing')
  t.equal(state.stats.downloads, 1)
  const reason = new Error('cancelled by the test')
  job.controller.abort(reason)
  t.equal(await run.catch((e: unknown) => e), reason, 'rejected with the signal\'s reason')
  t.same(await readdir(tempDir), [], 'the temp folder is gone')
  t.equal(job.pages.size, 0)
})

t.test('resume: the pinned version, the stored pages skipped, a changed file detected', async t => {
  const { state, adapter } = await setup(t)
  const want = exported('v2023-10-02')
  const checkpoint: OclExportCheckpoint = { kind: 'export', version: 'v2023-10-02', pagesSaved: 2, lastPageDigest: digest(want.slice(1000, 2000)) }
  const job = exportJob({ ...CIEL, version: 'latest' }, checkpoint)
  await adapter.run(job.ctx)
  t.equal(state.stats.versionLookups, 0, 'latest is not resolved again: a newer release must not mix in')
  t.same([...job.pages.keys()], [3, 4], 'pages 1 and 2 are not written again')
  sameRecords(t, [...job.pages.get(3) ?? [], ...job.pages.get(4) ?? []], want.slice(2000), 'the rest')

  const changed = exportJob({ ...CIEL }, { ...checkpoint, lastPageDigest: 'f'.repeat(64) })
  await t.rejects(adapter.run(changed.ctx), { code: 'invalid_upstream_response', message: /differs from the one an earlier attempt stored/ })
  t.equal(changed.pages.size, 0)
})

t.test('a record without its type fails the job rather than being re-serialised', async t => {
  const { adapter, tempDir } = await setup(t, { untypedRecord: 3 })
  await t.rejects(adapter.run(exportJob({ ...JDOE }).ctx), { code: 'invalid_upstream_response', message: /does not have "type": "Concept"/ })
  t.same(await readdir(tempDir), [])
})

t.test('a multi-MB export streams through in pages', async t => {
  const big: SimSource = { ...(DEFAULT_SOURCES[0] as SimSource), concepts: 8000, mappings: 5000 }
  const { state, adapter } = await setup(t, { sources: [big], exportPolls: 0 })
  const job = exportJob({ ...CIEL, version: 'v2024-01-15' })
  await adapter.run(job.ctx)
  const want = exported('v2024-01-15', CIEL, { sources: [big] })
  t.ok(want.reduce((n, r) => n + r.length, 0) > 10_000_000, 'more than 10 MB of records')
  sameRecords(t, job.records(), want, 'big export')
  t.equal(job.pages.size, Math.ceil(want.length / 1000))
  t.equal(state.stats.downloads, 1)
})
