import t, { type Test } from 'tap'
import type { DrchronoResource } from '../../../src/upstreams/drchrono/params.js'
import { expectedRecords } from '../../../src/upstreams/drchrono/simulator/index.js'
import { UpstreamError } from '../../../src/domain/errors.js'
import { drchronoSetup as setup, drchronoJob, stubAccepted, stubDrchrono } from '../../helpers/drchrono-job.js'

/** The exact texts a job must store, from the simulator's own data. */
const expected = (resource: DrchronoResource, params: Record<string, string | number | boolean>) =>
  expectedRecords(resource, params).map(r => JSON.stringify(r))

t.test('a multi-page job stores exactly the expected records, with monotonic checkpoints', async t => {
  const { state, adapter } = await setup(t, { inProgressPolls: 2 }, { pageConcurrency: 2 })
  const params = { since: '2024-02-01', order_by: 'updated_at', verbose: true, page_size: 300 }
  const want = expected('appointments', params)
  const pagesTotal = Math.ceil(want.length / 300)
  t.ok(pagesTotal >= 5, `${pagesTotal} pages`)
  // Page 2's save is slow, so later pages finish while it is still being written.
  const job = drchronoJob('appointments', params, { saveMs: page => (page === 2 ? 80 : Math.random() * 5) })
  await adapter.run(job.ctx)
  t.same(job.records(), want, 'same records, same order, same JSON text')
  t.same(job.unsafe, [], 'no checkpoint named a page before its records were saved')
  for (let p = 1; p <= pagesTotal; p++) t.equal(state.postsFor('appointments', p), 1, `page ${p} POSTed once`)
  t.same(job.checkpoints.map(c => c.done.length), Array.from({ length: pagesTotal }, (_, i) => i + 1), 'one more page done per save')
  t.ok(job.checkpoints.every((c, i) => i === 0 || job.checkpoints[i - 1]?.done.every(p => c.done.includes(p))), 'done only grows')
  t.same(job.checkpoints.at(-1), { pages: pagesTotal, count: want.length, done: Array.from({ length: pagesTotal }, (_, i) => i + 1) })
  t.same(job.progress.at(-1), { pagesDone: pagesTotal, pagesTotal })
})

t.test('other resources: integer ids, big clinical_note_field_values pages, an empty list', async t => {
  const { adapter } = await setup(t)
  for (const [resource, params] of [
    ['patients', { page_size: 500 }],
    ['clinical_note_field_values', { page_size: 5000 }],
    ['line_items', { posted_date: '2024-01-01/2024-01-31', doctor: 101 }],
    ['appointments', { date: '2030-01-01' }],
  ] as const) {
    const job = drchronoJob(resource, params)
    await adapter.run(job.ctx)
    t.same(job.records(), expected(resource, params), `${resource} ${JSON.stringify(params)}`)
  }
})

t.test('resume: only the pages not done are fetched', async t => {
  const { state, adapter } = await setup(t)
  const want = expected('appointments', {})
  t.equal(want.length > 2000 && want.length <= 3000, true, 'three pages of 1000')
  const job = drchronoJob('appointments', {}, { checkpoint: { pages: 3, count: want.length, done: [1, 3] } })
  await adapter.run(job.ctx)
  t.same(state.stats.posts, { 'appointments:2': 1 }, 'only page 2 was POSTed')
  t.same([...job.pages.keys()], [2])
  t.same(job.pages.get(2), want.slice(1000, 2000))
  t.same(job.checkpoints, [{ pages: 3, count: want.length, done: [1, 2, 3] }])

  const fresh = drchronoJob('appointments', {}, { checkpoint: { pages: null, count: null, done: [] } })
  await adapter.run(fresh.ctx)
  t.same(fresh.records(), want, 'a checkpoint without a page total starts from page 1')
})

t.test('the first pages go out together before the size is known; pages past the end cost one POST each and are dropped', async t => {
  // DrChrono refusing a page past the end at its POST (404 "Invalid page."): the three extra pages are refused at once.
  const { state, adapter } = await setup(t, { pastEnd: 'post-404' }, { pageConcurrency: 6 })
  const want = expected('appointments', {})
  t.equal(Math.ceil(want.length / 1000), 3, 'three pages of 1000')
  const job = drchronoJob('appointments', {})
  await adapter.run(job.ctx)
  t.same(job.records(), want)
  t.same(state.stats.posts, { 'appointments:1': 1, 'appointments:2': 1, 'appointments:3': 1 }, 'pages 1..3 POSTed once each')
  t.same(state.stats.invalidPages, { 'appointments:4': 1, 'appointments:5': 1, 'appointments:6': 1 }, 'pages 4..6 were asked once and answered 404 "Invalid page."')
  t.equal(state.stats.gets, 6, 'only the three real pages were polled (twice each)')
  t.same(job.checkpoints.at(-1), { pages: 3, count: want.length, done: [1, 2, 3] })

  // The default: DrChrono accepts those POSTs and would refuse the pages when polled. They are never polled.
  state.reset()
  state.setPastEnd('poll-404')
  const again = drchronoJob('appointments', {})
  await adapter.run(again.ctx)
  t.same(again.records(), want)
  for (const p of [1, 2, 3]) t.equal(state.postsFor('appointments', p), 1, `page ${p} POSTed once`)
  // A POST still on its way when page 1 told the size is dropped, and may never reach DrChrono.
  const pastEndPosts = [4, 5, 6].reduce((n, p) => n + state.postsFor('appointments', p), 0)
  t.ok(pastEndPosts <= 3)
  t.equal(state.pastEndRequests('appointments'), pastEndPosts, 'pages 4..6 cost at most their POST')
  t.equal(state.stats.gets, 6, 'only the three real pages were polled (twice each)')
})

t.test('a slot moves on while its page is saved: generation and saving overlap', async t => {
  const { state, adapter } = await setup(t, {}, { pageConcurrency: 2 })
  let postsOfPage3WhenPage1Saved = -1
  const job = drchronoJob('appointments', { page_size: 500 }, {
    saveMs: page => (page === 1 ? 300 : 0),
    onSave: page => { if (page === 1) postsOfPage3WhenPage1Saved = state.postsFor('appointments', 3) },
  })
  await adapter.run(job.ctx)
  t.same(job.records(), expected('appointments', { page_size: 500 }))
  t.equal(postsOfPage3WhenPage1Saved, 1, 'page 3 was POSTed while page 1 was still being saved')
  t.same(job.unsafe, [], 'no checkpoint named a page before its records were saved')
})

t.test('an early page refused as past the end is asked for again once the list proves longer', async t => {
  // Page 2 is refused the first time (a DrChrono that had not counted yet, say), but page 1 says there are 3 pages.
  const adapter = await stub(t, n => page(n, 3), (n, nth) => (n === 2 && nth === 1 ? 404 : 201), 3)
  const job = drchronoJob('appointments', {})
  await adapter.run(job.ctx)
  t.same(job.records(), [1, 2, 3].flatMap(n => [`{"id":${n}}`, `{"id":${-n}}`]))
})

t.test('a speculative page past the end is never polled, whatever it would answer', async t => {
  const empty = await stub(t, n => n === 1 ? page(1, 1) : page(n, 1, { results: [] }), 201, 3)
  const job = drchronoJob('appointments', {})
  await empty.run(job.ctx)
  t.same(job.records(), ['{"id":1}', '{"id":-1}'])
  t.same([...job.pages.keys()], [1], 'no page past the end was saved')

  // Were pages 2 and 3 polled, their records would be a protocol violation; they are abandoned unread instead.
  const full = await stub(t, n => page(n, 1), 201, 3)
  const unread = drchronoJob('appointments', {})
  await full.run(unread.ctx)
  t.same(unread.records(), ['{"id":1}', '{"id":-1}'])
})

t.test('an expired uuid is POSTed again', async t => {
  const { state, adapter } = await setup(t)
  state.expireNext(2)
  const job = drchronoJob('appointments', {})
  await adapter.run(job.ctx)
  t.same(job.records(), expected('appointments', {}))
  t.equal(state.postsFor('appointments', 2), 2)
  t.equal(state.stats.invalidUuids, 1)
})

t.test('429s and 5xx are retried and the job completes exactly', async t => {
  const { state, adapter } = await setup(t)
  state.failNext(2, 502)
  const job = drchronoJob('patients', { page_size: 400 })
  const run = adapter.run(job.ctx)
  await run
  state.failNext(1, 500)
  state.throttleNext(2, 0)
  const again = drchronoJob('patients', { page_size: 400 })
  await adapter.run(again.ctx)
  t.match(state.stats, { serverErrors: 3, throttled: 2 })
  t.same(job.records(), expected('patients', { page_size: 400 }))
  t.same(again.records(), job.records())

  state.setFaultRatios({ throttle: 0.15, error: 0.1, errorStatus: 503 })
  state.throttleNext(0, 0)
  const noisy = drchronoJob('transactions', { page_size: 250 })
  await adapter.run(noisy.ctx)
  t.same(noisy.records(), expected('transactions', { page_size: 250 }), 'random faults on every request')
  t.ok(state.stats.throttled > 2 && state.stats.serverErrors > 3, 'faults happened')
})

t.test('a 429 without Retry-After waits as its body says', async t => {
  const { state, adapter } = await setup(t)
  state.setRetryAfterHeader(false)
  state.throttleNext(1, 1)
  const job = drchronoJob('prescription_messages', {})
  const started = Date.now()
  await adapter.run(job.ctx)
  t.ok(Date.now() - started >= 950, '"Expected available in 1 second." was honoured')
  t.same(job.records(), expected('prescription_messages', {}))
})

t.test('a failed generation is POSTed again, up to maxRegenerations', async t => {
  const { state, adapter } = await setup(t, {}, { maxRegenerations: 2 })
  state.failGeneration(3)
  const job = drchronoJob('appointments', {})
  await adapter.run(job.ctx)
  t.same(job.records(), expected('appointments', {}))
  t.equal(state.postsFor('appointments', 3), 2)
  t.equal(state.stats.generationErrors, 1)

  state.reset()
  state.failGeneration(1, 3)
  await t.rejects(adapter.run(drchronoJob('appointments', {}).ctx), { code: 'upstream_failed', upstreamStatus: 500 })
  t.equal(state.postsFor('appointments', 1), 3, 'one POST and two regenerations')
})

t.test('401 without refresh credentials fails with upstream_unauthorized', async t => {
  const { state, adapter } = await setup(t, {}, { accessToken: 'stale', refreshToken: undefined, clientId: undefined, clientSecret: undefined })
  const err = await adapter.run(drchronoJob('appointments', {}).ctx).catch((e: unknown) => e)
  t.ok(err instanceof UpstreamError)
  t.match(err, { code: 'upstream_unauthorized', upstreamStatus: 401 })
  t.notMatch(String((err as Error).message), /stale/, 'the token is not in the message')
  t.equal(state.stats.tokenRefreshes, 0)
})

t.test('401 with refresh credentials: one refresh shared by concurrent pages, kept for later jobs', async t => {
  const { state, adapter } = await setup(t, { inProgressPolls: 2 }, { pageConcurrency: 4 })
  // The token dies before the job starts: its first four pages go out together and all meet a 401.
  state.revokeAccessToken()
  const job = drchronoJob('appointments', { page_size: 500 })
  await adapter.run(job.ctx)
  t.same(job.records(), expected('appointments', { page_size: 500 }))
  t.equal(state.stats.tokenRefreshes, 1, 'one refresh for all pages')
  t.equal(state.stats.unauthorized, 4, 'the four pages in flight were refused with the old token, and none after the refresh')

  const later = drchronoJob('patients', {})
  await adapter.run(later.ctx)
  t.equal(state.stats.tokenRefreshes, 1, 'the next job uses the refreshed token')

  state.revokeAccessToken()
  state.refreshToken = 'rotated-elsewhere'
  await t.rejects(adapter.run(drchronoJob('patients', {}).ctx), { code: 'upstream_unauthorized', upstreamStatus: 401 })
  t.equal(state.stats.failedRefreshes, 1)
})

t.test('an abort stops the job promptly', async t => {
  const { state, adapter } = await setup(t, { inProgressPolls: 1_000_000 }, { pollMaxMs: 20 })
  const job = drchronoJob('appointments', {})
  const reason = new Error('cancelled by the client')
  setTimeout(() => job.controller.abort(reason), 150)
  const started = Date.now()
  const err = await adapter.run(job.ctx).catch((e: unknown) => e)
  t.equal(err, reason, 'rejects with the signal\'s reason')
  t.ok(Date.now() - started < 500, `stopped after ${Date.now() - started} ms`)
  t.equal(job.pages.size, 0)
  // A request already on the wire when the abort came may still reach the simulator: let it land first.
  await new Promise(resolve => setTimeout(resolve, 100))
  const gets = state.stats.gets
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(state.stats.gets, gets, 'no request after the abort')
})

t.test('a job whose pages are already all done makes no request', async t => {
  const { state, adapter } = await setup(t)
  await adapter.run(drchronoJob('appointments', {}, { checkpoint: { pages: 3, count: 2450, done: [1, 2, 3] } }).ctx)
  t.same(state.stats.posts, {})
})

/**
 * A hand-written DrChrono for answers the simulator never gives: `complete(page)` is each page's GET body, and
 * `postStatus` the POST's status (a number, or per page and per POST of that page, counted from 1).
 */
async function stub (t: Test, complete: (page: number) => unknown, postStatus: number | ((page: number, nth: number) => number) = 201, pageConcurrency = 1) {
  const { adapter } = await stubDrchrono(t, r => {
    if (r.method !== 'POST') return { status: 200, body: complete(r.page) }
    const status = typeof postStatus === 'number' ? postStatus : postStatus(r.page, r.nth)
    if (status === 201) return stubAccepted(r.page)
    return { status, body: status === 404 ? { detail: 'Invalid page.' } : { detail: 'You do not have permission to perform this action.' } }
  }, { pageConcurrency, pollMaxMs: 10 })
  return adapter
}

const page = (n: number, pages: number, extra: Record<string, unknown> = {}) =>
  ({ status: 'Complete', pagination: { count: pages * 2, pages, page_size: 2, page: n }, uuid: String(n), results: [{ id: n }, { id: -n }], ...extra })

t.test('protocol violations fail with stable codes, never silently', async t => {
  const drift = await stub(t, n => page(n, n === 1 ? 3 : 4))
  const job = drchronoJob('patients', {})
  await t.rejects(drift.run(job.ctx), { code: 'invalid_upstream_response', message: /page 2 reports 4 pages/ })
  t.same([...job.pages.keys()], [1], 'nothing saved past the drift')

  const noResults = await stub(t, n => ({ ...page(n, 1), results: undefined }))
  await t.rejects(noResults.run(drchronoJob('patients', {}).ctx), { code: 'invalid_upstream_response' })
  const noPagination = await stub(t, n => ({ ...page(n, 1), pagination: undefined }))
  await t.rejects(noPagination.run(drchronoJob('patients', {}).ctx), { code: 'invalid_upstream_response' })
  const wrongPage = await stub(t, () => page(2, 2))
  await t.rejects(wrongPage.run(drchronoJob('patients', {}).ctx), { code: 'invalid_upstream_response' })
  const tooMany = await stub(t, n => page(n, 1001))
  await t.rejects(tooMany.run(drchronoJob('patients', {}).ctx), { code: 'upstream_rejected', message: /at most 1000/ })
  const forbidden = await stub(t, n => page(n, 1), 403)
  await t.rejects(forbidden.run(drchronoJob('patients', {}).ctx), { code: 'upstream_unauthorized', upstreamStatus: 403, message: /permission/ })

  const raw = await stub(t, n => ({ ...page(n, 1), results: [] }))
  const empty = drchronoJob('patients', {})
  await raw.run(empty.ctx)
  t.same(empty.checkpoints, [{ pages: 1, count: 2, done: [1] }], 'an empty page still completes the job')
})
