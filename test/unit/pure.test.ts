/** Plain unit tests of the small pure helpers the API and engine lean on. */
import t from 'tap'
import { z } from 'zod'
import { decodeCursor, encodeCursor } from '../../src/api/cursors.js'
import { isJobId } from '../../src/api/job-ids.js'
import { wantsNdjson } from '../../src/api/results.js'
import { sql } from '../../src/db/sql/sql.js'
import { canonicalJson, requestHash } from '../../src/engine/canonical.js'
import { PageQueue } from '../../src/upstreams/drchrono/adapter.js'

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

t.test('DrChrono page queue: speculative pages until the size is known, then the rest; held pages that exist come back', async t => {
  const ledger = { pages: null as number | null, done: new Set<number>(), isDone (p: number) { return this.done.has(p) } }
  const queue = new PageQueue(ledger, 3)
  t.same([queue.next(), queue.next(), queue.next(), queue.next()],
    [{ page: 1, regenerations: 0 }, { page: 2, regenerations: 0 }, { page: 3, regenerations: 0 }, undefined])
  queue.hold(3, 1)
  t.equal(queue.next(), undefined, 'a held page waits for the size')
  t.equal(queue.exhausted, false, 'nothing is over before the size is known')
  ledger.pages = 5
  ledger.done.add(4)
  t.same([queue.next(), queue.next(), queue.next()],
    [{ page: 3, regenerations: 1 }, { page: 5, regenerations: 0 }, undefined], 'page 3 again with its failed generation, page 4 is done')
  t.equal(queue.exhausted, true)

  const short = { pages: null as number | null, isDone: () => false }
  const q2 = new PageQueue(short, 4)
  for (let i = 0; i < 4; i++) q2.next()
  q2.hold(3, 0)
  q2.hold(4, 0)
  short.pages = 2
  t.equal(q2.exhausted, true, 'held pages past the real end are not waited for')
  t.equal(q2.next(), undefined, 'and never asked again')

  const resumed = { pages: 3, isDone: (p: number) => p !== 2 }
  const q3 = new PageQueue(resumed, 4)
  t.same([q3.next(), q3.next()], [{ page: 2, regenerations: 0 }, undefined], 'a resumed job asks only the pages not done')
})
