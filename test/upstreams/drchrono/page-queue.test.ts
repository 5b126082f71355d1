/** The DrChrono adapter's page queue: which page of a bulk list to ask for next (src/upstreams/drchrono/adapter.ts). */
import t from 'tap'
import { PageQueue } from '../../../src/upstreams/drchrono/adapter.js'

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
