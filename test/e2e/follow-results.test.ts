/**
 * Issue 14, acceptance test 2: a DrChrono job of 20 slow pages, read while it runs over real HTTP. A `follow=true`
 * NDJSON reader has its first records within one page time of the first save and ends with exactly the job's
 * records; one on a second gateway (same database, no workers) is woken by the pages the first one's worker saves;
 * a `partial=true` pager walks to the end and then sees the job complete. Times are measured against the job's own
 * page time (the simulator holds each page ~600 ms), recorded from the `saved:` notifications, never wall-clock
 * constants.
 */
import t, { type Test } from 'tap'
import pg from 'pg'
import { expectedRecords } from '../../src/upstreams/drchrono/simulator/index.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const PAGES = 20
const PAGE_SIZE = 10
const recordCount = { patients: PAGES * PAGE_SIZE }
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

async function eventually (t: Test, what: string, check: () => boolean, seconds = 30): Promise<void> {
  const deadline = Date.now() + seconds * 1000
  while (Date.now() < deadline) {
    if (check()) return
    await sleep(20)
  }
  t.fail(`${what}: not within ${seconds} s`)
}

/** A follow=true NDJSON read: each line with when it arrived, and how the body ended. */
async function follow (gw: TestGateway, id: string) {
  const res = await gw.request(`/jobs/${id}/results?follow=true`, { headers: { accept: 'application/x-ndjson' } })
  const lines: Array<{ at: number, line: string }> = []
  const ended = (async (): Promise<'complete' | Error> => {
    const decoder = new TextDecoder()
    let rest = ''
    try {
      for await (const chunk of res.body as ReadableStream<Uint8Array>) {
        const at = Date.now()
        rest += decoder.decode(chunk, { stream: true })
        const parts = rest.split('\n')
        rest = parts.pop() as string
        for (const line of parts) lines.push({ at, line })
      }
      return rest === '' ? 'complete' : new Error('a partial line at the end')
    } catch (err) {
      return err as Error
    }
  })()
  return { status: res.status, lines, ended }
}

/** A partial=true pager: walks cursor pages until the job is complete and the cursor ends. */
async function pager (gw: TestGateway, id: string) {
  const records: unknown[] = []
  const completes: boolean[] = []
  let cursor: string | null = null
  for (let i = 0; i < 10_000; i++) {
    const res = await gw.request(`/jobs/${id}/results?partial=true&limit=7${cursor === null ? '' : `&cursor=${cursor}`}`)
    if (res.status !== 200) throw new Error(`partial read answered ${res.status}`)
    const page = await res.json()
    records.push(...page.data)
    completes.push(page.complete)
    cursor = page.nextCursor
    if (cursor === null) break
    // Nothing new yet: ask again a little later, as a client would.
    if (page.data.length === 0) await sleep(100)
  }
  return { records, completes }
}

t.test('a DrChrono job of 20 slow pages, followed and paged while it runs', async t => {
  const sim = await startDrchrono(t, { recordCount, generationMs: 600 })
  const env = {
    ...drchronoEnv(sim),
    // One page at a time, each held ~600 ms by the simulator: a steady page time to measure against.
    DRCHRONO_PAGE_CONCURRENCY: '1',
    DRCHRONO_SPECULATIVE_PAGES: '1',
    DRCHRONO_REQUESTS_PER_SECOND: '1000',
    DRCHRONO_REQUESTS_PER_HOUR: '1000000',
  }
  const gw = await startGateway(t, { env })
  // Another replica on the same database that runs no jobs: its reader can only be woken by gw's worker's pages.
  const replica = await startGateway(t, { env: { ...env, WORKER_CONCURRENCY: '0' }, databaseUrl: gw.databaseUrl })
  await eventually(t, 'both listeners are connected', () => gw.app.jobs.waits.listening && replica.app.jobs.waits.listening)

  // When each page's save is notified, as every gateway hears it.
  const saves: number[] = []
  const listen = new pg.Client({ connectionString: gw.databaseUrl })
  await listen.connect()
  t.teardown(() => listen.end())
  let jobId = ''
  listen.on('notification', msg => { if (msg.payload === `saved:${jobId}`) saves.push(Date.now()) })
  await listen.query('LISTEN bulk_gateway_jobs')

  const params = { page_size: PAGE_SIZE }
  const expected = expectedRecords('patients', params, { seed: 7, recordCount })
  t.equal(expected.length, PAGES * PAGE_SIZE)
  const submitted = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params }) })
  t.equal(submitted.status, 202)
  jobId = (await submitted.json()).id

  const local = await follow(gw, jobId)
  const remote = await follow(replica, jobId)
  t.same([local.status, remote.status], [200, 200], 'both readers get their head while the job runs')
  const paged = pager(gw, jobId)

  const done = await waitForJob(gw, jobId, { timeoutMs: 120_000 })
  t.equal(done.status, 'completed', `the job completed ${JSON.stringify(done.error)}`)
  t.same([await local.ended, await remote.ended], ['complete', 'complete'], 'both streams end cleanly with the job')

  t.equal(saves.length, PAGES, 'one saved notification per page')
  const first = saves[0] as number
  const pageTime = ((saves[PAGES - 1] as number) - first) / (PAGES - 1)
  t.ok(pageTime >= 400, `pages are slow: ${Math.round(pageTime)} ms each`)
  for (const [name, reader] of [['same gateway', local], ['other replica', remote]] as const) {
    const firstAt = reader.lines[0]?.at ?? Infinity
    t.ok(firstAt < (saves[1] as number), `${name}: first records ${firstAt - first} ms after the first save, before the second (${(saves[1] as number) - first} ms)`)
    t.ok(firstAt - first < pageTime, `${name}: within one page time`)
    const beforeLast = reader.lines.filter(l => l.at < (saves[PAGES - 1] as number)).length
    t.ok(beforeLast >= (PAGES - 2) * PAGE_SIZE, `${name}: ${beforeLast} records arrived before the last page was saved`)
    t.same(reader.lines.map(l => JSON.parse(l.line)), expected, `${name}: exactly the job's records, in order`)
  }

  const plain = await gw.request(`/jobs/${jobId}/results`, { headers: { accept: 'application/x-ndjson' } })
  t.equal(plain.headers.get('x-total-count'), String(expected.length))
  t.equal(await plain.text(), local.lines.map(l => l.line + '\n').join(''), 'the followed stream is byte for byte the plain NDJSON read')

  const { records, completes } = await paged
  t.same(records, expected, 'the partial pager read every record once, in order')
  t.equal(completes.at(-1), true, 'and then saw the job complete')
  t.ok(completes.filter(c => !c).length >= PAGES / 2, `it read while the job ran (${completes.filter(c => !c).length} pages with complete: false)`)
  t.equal(gw.app.jobs.waits.size + replica.app.jobs.waits.size, 0, 'no reader is left waiting')
})

t.test('a DrChrono job that fails mid-stream breaks its follow stream off', async t => {
  const pages = 6
  const sim = await startDrchrono(t, { recordCount: { patients: pages * PAGE_SIZE }, generationMs: 200 })
  // Page 4's list fails to generate every time: after its regenerations the job fails with upstream_failed.
  sim.state.failGeneration(4, 100)
  const gw = await startGateway(t, {
    env: { ...drchronoEnv(sim), DRCHRONO_PAGE_CONCURRENCY: '1', DRCHRONO_SPECULATIVE_PAGES: '1', DRCHRONO_REQUESTS_PER_SECOND: '1000', DRCHRONO_REQUESTS_PER_HOUR: '1000000' },
  })
  await eventually(t, 'the listener is connected', () => gw.app.jobs.waits.listening)
  const params = { page_size: PAGE_SIZE }
  const submitted = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params }) })
  const { id } = await submitted.json()
  const reader = await follow(gw, id)
  t.equal(reader.status, 200)
  const ended = await reader.ended
  t.type(ended, Error, 'the client sees a broken stream, not a clean end')
  const job = await waitForJob(gw, id)
  t.match(job, { status: 'failed', error: { code: 'upstream_failed' } })
  const expected = expectedRecords('patients', params, { seed: 7, recordCount: { patients: pages * PAGE_SIZE } })
  // Pages 1 to 3 are saved long before page 4's regenerations run out: the reader has them, unless it was too slow to
  // read page 3 before the failure (it reads nothing more of a failed job), so a prefix of them, in order.
  const got = reader.lines.map(l => JSON.parse(l.line))
  t.ok(got.length >= 2 * PAGE_SIZE, `${got.length} records before the break`)
  t.same(got, expected.slice(0, got.length), 'in order, and none from past the failure')
  t.ok(got.length <= 3 * PAGE_SIZE)
  const after = await gw.request(`/jobs/${id}/results?follow=true`, { headers: { accept: 'application/x-ndjson' } })
  t.match([after.status, await after.json()], [409, { code: 'results_not_ready' }], 'a failed job answers as before')
})
