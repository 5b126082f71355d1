/**
 * UPSTREAM_MAX_BYTES_IN_FLIGHT on DrChrono's concurrent pages: while saves are slow, the adapter may not read
 * pages ahead of them beyond what the job's byte limit allows. A hand-written DrChrono (uuids are page numbers)
 * serves pages of ~200 KB and counts, as it answers each poll, how many pages it has sent that are not saved yet.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { drchronoAdapter } from '../../../src/upstreams/drchrono/adapter.js'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { memoryServices } from '../../../src/upstreams/memory-services.js'
import { UNMETERED, drchronoJob } from '../../helpers/drchrono-job.js'

const PAGES = 12
const PER_PAGE = 10
const RECORD = `{"id":"%ID%","notes":"${'n'.repeat(20_000)}"}`

/**
 * A hand-written DrChrono on loopback (uuids are page numbers) serving PAGES pages of ~200 KB, and the adapter
 * pointed at it with a 256 KiB DrChrono answer limit and 512 KiB in flight per job. `onPoll` runs as each page
 * is answered.
 */
async function pagesOf200kB (t: Test, pageConcurrency: number, onPoll: () => void = () => {}) {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (req.method === 'POST') {
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'In progress', uuid: url.searchParams.get('page') ?? '1' }))
      return
    }
    const page = Number(url.searchParams.get('uuid'))
    const results = Array.from({ length: PER_PAGE }, (_, i) => RECORD.replace('%ID%', `${page}-${i}`))
    onPoll()
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      `{"status":"Complete","uuid":"${page}","pagination":{"count":${PAGES * PER_PAGE},"pages":${PAGES},"page_size":${PER_PAGE},"page":${page}},"results":[${results.join(',')}]}`)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10, limits: { responseBytes: { drchrono: 256 * 1024 }, maxBytesInFlight: 512 * 1024 } })
  t.teardown(async () => {
    await client.close()
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  return drchronoAdapter({
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    accessToken: 'test-access-token',
    pollInitialMs: 1,
    pollMaxMs: 2,
    pageConcurrency,
    ...UNMETERED,
  }, client, memoryServices())
}

t.test('pages read but not yet saved never hold more than the job\'s bytes in flight', async t => {
  let saved = 0
  let sentUnsaved = 0
  let peak = 0
  // Two pages at a time: each may bring half of the 512 KiB (its DrChrono answer limit is no lower), so a page
  // read but not saved keeps the next one from going out until it is stored.
  const adapter = await pagesOf200kB(t, 2, () => {
    sentUnsaved++
    peak = Math.max(peak, sentUnsaved - saved)
  })
  // Saves are the bottleneck, as a busy database makes them: fetching alone would run far ahead.
  const job = drchronoJob('patients', { page_size: PER_PAGE }, { saveMs: () => 40, onSave: () => { saved++ } })
  await adapter.run(job.ctx)
  t.equal(job.records().length, PAGES * PER_PAGE, 'every record stored')
  t.equal(saved, PAGES)
  t.ok(peak <= 2, `at most two pages sent and not yet saved at any time (peak ${peak})`)
  t.ok(peak >= 1)
})

t.test('a page larger than its share of the job\'s bytes fails the job as too large, holding nothing', async t => {
  // Four pages at a time in 512 KiB: 128 KiB each, and a page is ~200 KB.
  const adapter = await pagesOf200kB(t, 4)
  const job = drchronoJob('patients', { page_size: PER_PAGE })
  await t.rejects(adapter.run(job.ctx), { code: 'upstream_response_too_large' })
  t.equal(job.records().length, 0, 'nothing stored')
})
