/** Plain unit tests of the small pure helpers the API and engine lean on. */
import t from 'tap'
import { z } from 'zod'
import { decodeCursor, encodeCursor, isJobId } from '../../src/api/job-view.js'
import { wantsNdjson } from '../../src/api/results.js'
import { sql } from '../../src/db/sql/sql.js'
import { canonicalJson, requestHash } from '../../src/engine/canonical.js'
import { PageQueue } from '../../src/upstreams/drchrono/adapter.js'
import { GenerationPace } from '../../src/upstreams/drchrono/bulk-list.js'

t.test('canonical JSON ignores key order at every depth, keeps array order', async t => {
  t.equal(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), '{"a":{"c":null,"d":[2,1]},"b":1}')
  t.equal(requestHash({ upstream: 'u', resource: 'r', params: { x: 1, y: 2 }, payload: null }),
    requestHash({ resource: 'r', upstream: 'u', payload: null, params: { y: 2, x: 1 } } as never))
  t.not(requestHash({ upstream: 'u', resource: 'r', params: { x: [1, 2] }, payload: null }),
    requestHash({ upstream: 'u', resource: 'r', params: { x: [2, 1] }, payload: null }))
})

t.test('Accept negotiation for NDJSON', async t => {
  t.equal(wantsNdjson(undefined), false)
  t.equal(wantsNdjson('application/json'), false)
  t.equal(wantsNdjson('*/*'), false)
  t.equal(wantsNdjson('application/x-ndjson'), true)
  t.equal(wantsNdjson('application/ndjson'), true)
  t.equal(wantsNdjson('application/json;q=0.9, application/x-ndjson'), true)
  t.equal(wantsNdjson('application/json, application/x-ndjson;q=0.5'), false)
  t.equal(wantsNdjson('application/x-ndjson;q=0'), false)
})

t.test('cursors round-trip and refuse forgeries', async t => {
  const schema = z.tuple([z.number().int(), z.number().int()])
  t.same(decodeCursor(encodeCursor([3, 999]), schema), [3, 999])
  t.equal(decodeCursor('not base64 json', schema), null)
  t.equal(decodeCursor(encodeCursor({ page: 1 }), schema), null)
  t.equal(isJobId('0b8c1a0e-8f3e-4f6a-9d2c-1e2f3a4b5c6d'), true)
  t.equal(isJobId('0b8c1a0e'), false)
})

t.test('sql tagged template: values become parameters, fragments nest', async t => {
  const where = sql`status = ${'queued'}`
  t.same(sql`SELECT * FROM jobs WHERE id = ${'x'} AND ${where} LIMIT ${5}`.toQuery(), {
    text: 'SELECT * FROM jobs WHERE id = $1 AND status = $2 LIMIT $3',
    values: ['x', 'queued', 5],
  })
  t.same(sql`SELECT ${"'; DROP TABLE jobs; --"}`.toQuery().values, ["'; DROP TABLE jobs; --"])
})

t.test('DrChrono poll pace: first poll near the quickest page seen, never below the initial wait', async t => {
  const o = { pollInitialMs: 500, pollMaxMs: 10_000 }
  const pace = new GenerationPace()
  t.same([1, 2, 3, 4].map(n => pace.waitMs(n, o)), [500, 500, 1000, 2000], 'no page seen yet: the initial wait, then doubling')
  pace.observe(1500)
  t.equal(pace.waitMs(1, o), 1350, 'a little under the quickest page')
  pace.observe(2500)
  t.equal(pace.waitMs(1, o), 1350, 'a slower page does not move it')
  pace.observe(100)
  t.equal(pace.waitMs(1, o), 500, 'never below pollInitialMs')
  pace.observe(60_000)
  t.equal(new GenerationPace().waitMs(40, o), 10_000, 'capped by pollMaxMs')
  const slow = new GenerationPace()
  slow.observe(60_000)
  t.equal(slow.waitMs(1, o), 10_000, 'the first wait is capped too')
})

t.test('DrChrono page queue: speculative pages until the size is known, then the rest; refused pages that exist come back', async t => {
  const ledger = { pages: null as number | null, done: new Set<number>(), isDone (p: number) { return this.done.has(p) } }
  const queue = new PageQueue(ledger, 3)
  t.same([queue.next(), queue.next(), queue.next(), queue.next()],
    [{ page: 1, mayBePastEnd: false }, { page: 2, mayBePastEnd: true }, { page: 3, mayBePastEnd: true }, undefined])
  queue.refused(3)
  ledger.pages = 5
  ledger.done.add(4)
  t.same([queue.next(), queue.next(), queue.next()],
    [{ page: 3, mayBePastEnd: false }, { page: 5, mayBePastEnd: false }, undefined], 'page 3 again, page 4 is done')

  const short = { pages: null as number | null, isDone: () => false }
  const q2 = new PageQueue(short, 4)
  for (let i = 0; i < 4; i++) q2.next()
  q2.refused(3)
  q2.refused(4)
  short.pages = 2
  t.equal(q2.next(), undefined, 'refused pages past the real end are dropped')
})
