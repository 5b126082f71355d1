/**
 * Pages past the end of a DrChrono list (issue 9): whichever of the four plausible ways DrChrono refuses them, a
 * job completes with exactly the list's records, and a page past the end costs at most its POST. Then the 404
 * rules, a list that changes while it is read, and asking without speculation, against a hand-written DrChrono.
 */
import t from 'tap'
import { expectedRecords, PAST_END_MODES } from '../../../src/upstreams/drchrono/simulator/index.js'
import { drchronoSetup, drchronoJob, stubAccepted, stubDrchrono, stubPage } from '../../helpers/drchrono-job.js'

const CONCURRENCY = 4 // the adapter's default, and so its default count of speculative pages

t.test('lists of 0 to 2500 records complete exactly under every past-the-end behaviour', async t => {
  for (const count of [0, 1, 999, 1000, 1001, 2500]) {
    const recordCount = { patients: count }
    const { state, adapter } = await drchronoSetup(t, { recordCount })
    const want = expectedRecords('patients', { page_size: 1000 }, { recordCount }).map(r => JSON.stringify(r))
    t.equal(want.length, count)
    const pages = Math.max(1, Math.ceil(count / 1000))
    for (const mode of PAST_END_MODES) {
      state.reset()
      state.setPastEnd(mode)
      const job = drchronoJob('patients', { page_size: 1000 })
      await adapter.run(job.ctx)
      const what = `${count} records (${pages} page${pages === 1 ? '' : 's'}), ${mode}`
      t.same(job.records(), want, `${what}: exactly the simulator's records`)
      t.same(job.checkpoints.at(-1), { pages, count, done: Array.from({ length: pages }, (_, i) => i + 1) }, `${what}: checkpoint`)
      t.same(job.unsafe, [], `${what}: no checkpoint named an unsaved page`)
      for (let p = 1; p <= pages; p++) t.equal(state.postsFor('patients', p), 1, `${what}: page ${p} POSTed once`)
      const pastEnd = state.pastEndRequests('patients')
      t.ok(pastEnd <= CONCURRENCY - Math.min(pages, CONCURRENCY), `${what}: ${pastEnd} requests past the end, none but POSTs of pages asked before the size was known`)
      for (let p = pages + 1; p <= CONCURRENCY; p++) t.ok(state.requestsFor('patients', p) <= 1, `${what}: page ${p} was never polled`)
      const total = state.totalRequests('patients')
      t.comment(`${what}: ${total} requests, ${(total / pages).toFixed(2)} per page (${pastEnd} past the end)`)
    }
  }
})

t.test('without speculation nothing is asked past the end', async t => {
  const recordCount = { patients: 1500 }
  const { state, adapter } = await drchronoSetup(t, { recordCount }, { speculativePages: 1 })
  const job = drchronoJob('patients', {})
  await adapter.run(job.ctx)
  t.same(job.records(), expectedRecords('patients', {}, { recordCount }).map(r => JSON.stringify(r)))
  t.equal(state.pastEndRequests('patients'), 0)
  t.same(state.stats.posts, { 'patients:1': 1, 'patients:2': 1 })
})

t.test('a page past the end still in flight is dropped as soon as the size is known', async t => {
  // Pages 2..4 are POSTed with page 1, and DrChrono never answers those POSTs: the job must not wait for them.
  const { adapter, seen } = await stubDrchrono(t, r => {
    if (r.page > 1 && r.method === 'POST') return { hold: true }
    return r.method === 'POST' ? stubAccepted(r.page) : { status: 200, body: stubPage(1, 1) }
  }, { pageConcurrency: CONCURRENCY })
  const job = drchronoJob('patients', {})
  await adapter.run(job.ctx)
  t.same(job.records(), ['{"id":1}', '{"id":-1}'])
  const held = seen.filter(r => r.page > 1)
  t.equal(held.length, 3, 'pages 2..4 were asked before the size was known')
  while (!held.every(r => r.dropped === true)) await new Promise(resolve => setTimeout(resolve, 10))
  t.pass('and their requests were dropped')
})

t.test('only "Invalid uuid specified" means an expired uuid; any other 404 is never POSTed again in a loop', async t => {
  const expired = await stubDrchrono(t, r => r.method === 'POST'
    ? stubAccepted(r.page)
    : r.nth === 1 ? { status: 404, body: { detail: 'Invalid uuid specified.' } } : { status: 200, body: stubPage(1, 1) })
  const job = drchronoJob('patients', {})
  await expired.adapter.run(job.ctx)
  t.same(job.records(), ['{"id":1}', '{"id":-1}'], 'a uuid that expired is POSTed again (a trailing period is tolerated)')
  t.equal(expired.seen.filter(r => r.method === 'POST' && r.page === 1).length, 2)

  const unknown = await stubDrchrono(t, r => r.method === 'POST' ? stubAccepted(r.page) : { status: 404, body: { detail: 'Not found.' } })
  const unknownErr = await unknown.adapter.run(drchronoJob('patients', {}).ctx).catch((e: unknown) => e)
  t.match(unknownErr, { code: 'upstream_not_found', upstreamStatus: 404, message: /DrChrono answered 404; DrChrono does not know this list or page/ },
    'an unknown 404 on a page that must exist fails the job with its status')
  t.notMatch(String((unknownErr as Error).message), /Not found\./, 'DrChrono\'s detail is not quoted')
  t.equal(unknown.seen.filter(r => r.method === 'POST' && r.page === 1).length, 1, 'after one POST')

  // Page 1 says there are 3 pages; page 3 is then refused as past the end: the list shrank while it was read.
  const shrank = await stubDrchrono(t, r => {
    if (r.method === 'POST') return stubAccepted(r.page)
    return r.page === 3 ? { status: 404, body: { detail: 'Invalid page.' } } : { status: 200, body: stubPage(r.page, 3) }
  }, { pageConcurrency: 1 })
  await t.rejects(shrank.adapter.run(drchronoJob('patients', {}).ctx), { code: 'invalid_upstream_response', message: /list changed while it was read/ })
  t.equal(shrank.seen.filter(r => r.method === 'POST' && r.page === 3).length, 1, 'page 3 was not POSTed again')
})

t.test('a speculative page refused with an unknown 404 is held, then asked again once it proves to exist', async t => {
  const { adapter, seen } = await stubDrchrono(t, r => {
    if (r.method === 'POST') return r.page === 2 && r.nth === 1 ? { status: 404, body: '<h1>Not Found</h1>' } : stubAccepted(r.page)
    return { status: 200, body: stubPage(r.page, 2) }
  }, { pageConcurrency: 2 })
  const job = drchronoJob('patients', {})
  await adapter.run(job.ctx)
  t.same(job.records(), ['{"id":1}', '{"id":-1}', '{"id":2}', '{"id":-2}'])
  t.equal(seen.filter(r => r.method === 'POST' && r.page === 2).length, 2, 'refused once, asked once more')
})

t.test('a refusal asked before the size was known, answered after, is held too', async t => {
  // Page 2's POST went out with page 1's, and DrChrono's 404 for it arrives only once page 1 (2 pages) is saved:
  // it may describe the list before DrChrono had counted it, so page 2 is asked once more rather than failed.
  let page1Saved!: () => void
  const saved = new Promise<void>(resolve => { page1Saved = resolve })
  const { adapter, seen } = await stubDrchrono(t, r => {
    if (r.method === 'POST') return r.page === 2 && r.nth === 1 ? { status: 404, body: { detail: 'Invalid page.' }, after: saved } : stubAccepted(r.page)
    return { status: 200, body: stubPage(r.page, 2) }
  }, { pageConcurrency: 2 })
  const job = drchronoJob('patients', {}, { onSave: page => { if (page === 1) page1Saved() } })
  await adapter.run(job.ctx)
  t.same(job.records(), ['{"id":1}', '{"id":-1}', '{"id":2}', '{"id":-2}'])
  t.equal(seen.filter(r => r.method === 'POST' && r.page === 2).length, 2)
})

t.test('a count that moves while the list is read is shown on the job; a page total that moves fails it', async t => {
  const moved = await stubDrchrono(t, r => {
    if (r.method === 'POST') return stubAccepted(r.page)
    const page = stubPage(r.page, 2)
    return { status: 200, body: r.page === 2 ? { ...page, pagination: { ...page.pagination, count: 3 } } : page }
  }, { pageConcurrency: 1 })
  const job = drchronoJob('patients', {})
  await moved.adapter.run(job.ctx)
  t.equal(job.records().length, 4, 'the job completes')
  t.same(job.upstreamInfo, { listChanged: { firstCount: 4, laterCount: 3, page: 2 } })
  t.same(job.checkpoints.at(-1), { pages: 2, count: 4, done: [1, 2] }, 'the checkpoint keeps the first count')

  const drift = await stubDrchrono(t, r => r.method === 'POST' ? stubAccepted(r.page) : { status: 200, body: stubPage(r.page, r.page === 1 ? 3 : 4) }, { pageConcurrency: 1 })
  await t.rejects(drift.adapter.run(drchronoJob('patients', {}).ctx), { code: 'invalid_upstream_response', message: /page 2 reports 4 pages/ })
})

t.test('a failed generation of a page that exists still counts toward maxRegenerations', async t => {
  const failed = { status: 500, body: { status: 'Failed', uuid: '2', detail: 'An error occurred while generating the list.' } }
  const { adapter, seen } = await stubDrchrono(t, r => {
    if (r.method === 'POST') return stubAccepted(r.page)
    return r.page === 2 ? failed : { status: 200, body: stubPage(r.page, 2) }
  }, { pageConcurrency: 2, maxRegenerations: 2 })
  await t.rejects(adapter.run(drchronoJob('patients', {}).ctx), { code: 'upstream_failed', upstreamStatus: 500 })
  t.equal(seen.filter(r => r.method === 'POST' && r.page === 2).length, 3, 'one POST and two regenerations')
})
