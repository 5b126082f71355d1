/**
 * Limits on OCL export files: download bytes, entries, inflated bytes, compression ratio and record size, each
 * failing the job with upstream_response_too_large; and pages cut by bytes so that a job holds no more than its
 * bytes in flight. A hand-written OCL on loopback serves zips built here and counts what it sent.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import yazl from 'yazl'
import { UpstreamClient, type UpstreamClientOptions } from '../../../src/upstreams/http.js'
import { oclAdapter, type OclSettings } from '../../../src/upstreams/ocl/adapter.js'
import { expectedExport, startOclSimulator } from '../../../src/upstreams/ocl/simulator/index.js'
import { fakeJob } from '../../helpers/job-context.js'

const MiB = 1024 * 1024
const TARGET = { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', version: 'v1' }

/** A zip of `entries` (name → content), as OCL's export would be packed. */
async function zipOf (entries: Record<string, string | Buffer>): Promise<Buffer> {
  const zip = new yazl.ZipFile()
  for (const [name, content] of Object.entries(entries)) zip.addBuffer(Buffer.from(content), name)
  zip.end()
  const chunks: Buffer[] = []
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk)
  return Buffer.concat(chunks)
}

const exportJson = (concepts: string[], extra = ''): string =>
  `{"id": "v1"${extra}, "concepts": [${concepts.join(', ')}], "mappings": []}`
const concept = (id: number, pad = ''): string => `{"type": "Concept", "id": "${id}", "pad": "${pad}"}`

/**
 * OCL's export GET answers 302 to /file, which sends `file` (a zip), or `flood` bytes of noise without a
 * Content-Length, as fast as the client reads them. `sent` counts the bytes handed to the socket.
 */
async function fakeOcl (t: Test, file: Buffer | { flood: number }) {
  const seen = { sent: 0, downloads: 0 }
  const server = createServer((req, res) => {
    if (req.url?.endsWith('/export/')) { res.writeHead(302, { location: '/file' }).end(); return }
    seen.downloads++
    if (Buffer.isBuffer(file)) { seen.sent += file.length; res.writeHead(200, { 'content-type': 'application/zip' }).end(file); return }
    const noise = randomBytes(64 * 1024)
    let closed = false
    res.on('close', () => { closed = true })
    res.writeHead(200, { 'content-type': 'application/zip' })
    const more = (): void => {
      while (!closed && seen.sent < file.flood) {
        seen.sent += noise.length
        if (!res.write(noise)) { res.once('drain', more); return }
      }
      if (!closed) res.end()
    }
    more()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

/** An adapter pointed at `baseUrl`, a temp folder, and a job on the engine's side in memory whose pages the test reads. */
async function run (
  t: Test, baseUrl: string, settings: Partial<OclSettings> = {}, client: UpstreamClientOptions = {}, target: Record<string, string> = TARGET
) {
  const http = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10, ...client })
  const tempDir = await mkdtemp(join(tmpdir(), 'ocl-limits-test-'))
  t.teardown(async () => { await http.close(); await rm(tempDir, { recursive: true, force: true }) })
  const adapter = oclAdapter({ baseUrl, token: 'test-token', pollInitialMs: 1, pollMaxMs: 4, maxDownloadAttempts: 1, tempDir, ...settings }, http)
  const job = fakeJob('export', target)
  const outcome = await adapter.run(job.ctx).then(() => null, (err: unknown) => err)
  return { outcome, pages: job.pages, tempDir }
}

t.test('a zip bomb (export.json inflating ~1000 times) is refused from its directory, before it inflates', async t => {
  const bomb = await zipOf({ 'export.json': exportJson([concept(1)], `, "description": "${' '.repeat(20 * MiB)}"`) })
  t.ok(bomb.length < 40 * 1024, `the bomb is small (${bomb.length} bytes for 20 MiB)`)
  const { url } = await fakeOcl(t, bomb)
  const { outcome, pages, tempDir } = await run(t, url)
  t.match(outcome, { name: 'UpstreamError', code: 'upstream_response_too_large', message: /200 times its compressed size \(OCL_EXPORT_MAX_COMPRESSION_RATIO\)/ })
  t.equal(pages.size, 0, 'nothing stored')
  t.same(await readdir(tempDir), [], 'the spooled file is gone')
})

t.test('export.json past OCL_EXPORT_MAX_UNCOMPRESSED_BYTES fails, however well it compresses', async t => {
  const concepts = Array.from({ length: 300 }, (_, i) => concept(i, randomBytes(3000).toString('base64')))
  const file = await zipOf({ 'export.json': exportJson(concepts) })
  const { url } = await fakeOcl(t, file)
  const { outcome, pages } = await run(t, url, { exportLimits: { maxUncompressedBytes: MiB } })
  t.match(outcome, { code: 'upstream_response_too_large', message: /limit of 1048576 bytes \(OCL_EXPORT_MAX_UNCOMPRESSED_BYTES\)/ })
  t.equal(pages.size, 0)
})

t.test('a zip with more entries than OCL_EXPORT_MAX_ENTRIES fails before any is read', async t => {
  const entries: Record<string, string> = { 'export.json': exportJson([concept(1)]) }
  for (let i = 0; i < 150; i++) entries[`junk/${i}.txt`] = 'x'
  const { url } = await fakeOcl(t, await zipOf(entries))
  const { outcome } = await run(t, url)
  t.match(outcome, { code: 'upstream_response_too_large', message: /151 entries, more than 100 \(OCL_EXPORT_MAX_ENTRIES\)/ })
})

t.test('a download past OCL_EXPORT_MAX_DOWNLOAD_BYTES stops as it crosses it: the server sends little more', async t => {
  const { url, seen } = await fakeOcl(t, { flood: 256 * MiB })
  const { outcome, tempDir } = await run(t, url, { maxDownloadBytes: MiB })
  t.match(outcome, { code: 'upstream_response_too_large', message: /OCL_EXPORT_MAX_DOWNLOAD_BYTES/ })
  t.equal(seen.downloads, 1, 'not downloaded again: it would be as large')
  t.ok(seen.sent < 32 * MiB, `the server sent ${seen.sent} bytes of 256 MiB`)
  t.same(await readdir(tempDir), [])
})

t.test('a record past UPSTREAM_MAX_RECORD_BYTES fails while it is read', async t => {
  const file = await zipOf({ 'export.json': exportJson([concept(1), concept(2, 'r'.repeat(200_000)), concept(3)]) })
  const { url } = await fakeOcl(t, file)
  const { outcome } = await run(t, url, {}, { limits: { maxRecordBytes: 64 * 1024 } })
  t.match(outcome, { code: 'upstream_response_too_large', message: /limit of 65536 bytes \(UPSTREAM_MAX_RECORD_BYTES\)/ })
})

t.test('pages are cut by bytes too: with the record being read, a job holds no more than its bytes in flight', async t => {
  const simulator = await startOclSimulator({ exportPolls: 0, token: 'test-token' })
  t.teardown(() => simulator.close())
  const target = { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', version: 'v2024-01-15' }
  const limits = { maxBytesInFlight: 256 * 1024, maxRecordBytes: 64 * 1024 }
  const { outcome, pages } = await run(t, simulator.url, {}, { limits }, target)
  t.equal(outcome, null, 'the job completes')
  const want = expectedExport({}, target)
  const got = [...pages.keys()].sort((a, b) => a - b).flatMap(p => pages.get(p) ?? [])
  t.equal(got.length, want.length)
  t.ok(got.every((r, i) => r === want[i]), 'the same records in the same order')
  const sizes = [...pages.values()].map(records => records.reduce((n, r) => n + Buffer.byteLength(r), 0))
  t.ok(Math.max(...sizes) <= limits.maxBytesInFlight - limits.maxRecordBytes, `every page within 192 KiB (largest ${Math.max(...sizes)})`)
})
