/**
 * The cache of finished jobs' views on its own, on a clock of the test's: what is cached and until when, client
 * scoping, invalidation (including one that overlaps a database read), the listener's state, and its bounds.
 */
import t from 'tap'
import { JobViewCache, defaultJobViewCacheLimits, type CacheableJob, type JobViewCacheLimits } from '../../src/engine/job-view-cache.js'

const id = '0b0e5f43-7a1c-4c2e-9d8e-3f1a2b3c4d5e'
const otherId = '1c1f6054-8b2d-4d3f-8e9f-4a2b3c4d5e6f'

function setup (limits: Partial<JobViewCacheLimits> = {}) {
  let now = 1_000_000
  const cache = new JobViewCache({ ...defaultJobViewCacheLimits, ...limits }, () => now)
  cache.setListening(true)
  return { cache, advance: (ms: number) => { now += ms }, now: () => now }
}

const job = (over: Partial<CacheableJob> = {}): CacheableJob =>
  ({ id, clientId: 'alpha', status: 'failed', msToExpiry: null, ...over })

t.test('caches failed, cancelled and unexpired completed jobs only', async t => {
  const { cache } = setup()
  for (const status of ['queued', 'running', 'expired'] as const) {
    cache.set(cache.generation(), job({ status, msToExpiry: 60_000 }), status)
    t.equal(cache.get('alpha', id), undefined, `${status} is not cached`)
  }
  cache.set(cache.generation(), job({ status: 'completed', msToExpiry: 0 }), 'past expiry')
  t.equal(cache.get('alpha', id), undefined, 'a completed job at or past expiresAt is not cached')
  cache.set(cache.generation(), job({ status: 'completed', msToExpiry: null }), 'no expiry')
  t.equal(cache.get('alpha', id), undefined, 'a completed job without expiresAt is not cached')
  for (const status of ['failed', 'cancelled', 'completed'] as const) {
    cache.set(cache.generation(), job({ status, msToExpiry: 60_000 }), status)
    t.equal(cache.get('alpha', id), status, `${status} is cached`)
  }
})

t.test('a completed job is served until its expiresAt, not after', async t => {
  const { cache, advance } = setup()
  cache.set(cache.generation(), job({ status: 'completed', msToExpiry: 5000 }), 'completed')
  advance(4999)
  t.equal(cache.get('alpha', id), 'completed')
  advance(1)
  t.equal(cache.get('alpha', id), undefined, 'from expiresAt on the view comes from the database')
  t.equal(cache.size, 0, 'and the entry is gone')
})

t.test('expiry is counted on the database\'s clock, from before the read', async t => {
  const { cache, advance } = setup()
  const since = cache.generation()
  // The read took 300 ms; the database judged the job to have 5000 ms left at some moment during it. Whatever
  // this process's clock says of expiresAt, the entry must not outlive since + 5000.
  advance(300)
  cache.set(since, job({ status: 'completed', msToExpiry: 5000 }), 'completed')
  advance(4699)
  t.equal(cache.get('alpha', id), 'completed')
  advance(1)
  t.equal(cache.get('alpha', id), undefined, 'gone 5000 ms after the read began: early by the read\'s length at most, never late')
  const slow = cache.generation()
  advance(400)
  cache.set(slow, job({ status: 'completed', msToExpiry: 300 }), 'expired during the read')
  t.equal(cache.get('alpha', id), undefined, 'a job whose expiry passed while it was being read is not cached')
})

t.test('a failed or cancelled job is served until its expiresAt too (its params and error message are erased then)', async t => {
  for (const status of ['failed', 'cancelled'] as const) {
    const { cache, advance } = setup()
    cache.set(cache.generation(), job({ status, msToExpiry: 5000 }), status)
    advance(4999)
    t.equal(cache.get('alpha', id), status)
    advance(1)
    t.equal(cache.get('alpha', id), undefined, `${status}: from expiresAt on the view comes from the database`)
  }
})

t.test('no entry outlives maxAgeMs', async t => {
  const { cache, advance } = setup({ maxAgeMs: 1000 })
  cache.set(cache.generation(), job({ status: 'failed' }), 'failed')
  advance(999)
  t.equal(cache.get('alpha', id), 'failed')
  advance(1)
  t.equal(cache.get('alpha', id), undefined)
})

t.test('another client never gets the owner\'s entry; ids match whatever their case', async t => {
  const { cache } = setup()
  cache.set(cache.generation(), job(), 'alpha\'s view')
  t.equal(cache.get('beta', id), undefined)
  t.equal(cache.get('alpha', id.toUpperCase()), 'alpha\'s view')
  cache.invalidate(id.toUpperCase())
  t.equal(cache.get('alpha', id), undefined)
})

t.test('invalidate forgets the job, and a read that overlapped an invalidation is not cached', async t => {
  const { cache } = setup()
  cache.set(cache.generation(), job(), 'v1')
  cache.invalidate(id)
  t.equal(cache.get('alpha', id), undefined)
  const since = cache.generation()
  cache.invalidate(otherId) // arrives while the row is being read: the row read may predate it
  cache.set(since, job(), 'maybe stale')
  t.equal(cache.get('alpha', id), undefined)
  cache.set(cache.generation(), job(), 'v2')
  t.equal(cache.get('alpha', id), 'v2')
})

t.test('off while the listener is down; every state change empties it', async t => {
  const { cache } = setup()
  cache.set(cache.generation(), job(), 'v1')
  const since = cache.generation()
  cache.setListening(false)
  t.equal(cache.get('alpha', id), undefined)
  cache.set(cache.generation(), job(), 'while deaf')
  t.equal(cache.get('alpha', id), undefined, 'nothing is cached while notifications cannot arrive')
  cache.setListening(true)
  cache.set(since, job(), 'read before the reconnect')
  t.equal(cache.get('alpha', id), undefined, 'a read from before a reconnect is not cached')
  cache.set(cache.generation(), job(), 'v2')
  t.equal(cache.get('alpha', id), 'v2')
  t.equal(new JobViewCache().get('alpha', id), undefined, 'a new cache starts off')
})

t.test('bounded: least recently used entries go first, by count and by size', async t => {
  const ids = Array.from({ length: 4 }, (_, i) => `00000000-0000-4000-8000-00000000000${i}`)
  const { cache } = setup({ maxEntries: 3, maxChars: 990, maxEntryChars: 500 })
  for (const i of ids.slice(0, 3)) cache.set(cache.generation(), job({ id: i }), i)
  t.equal(cache.get('alpha', ids[0]!), ids[0], 'touching the first makes the second the least recently used')
  cache.set(cache.generation(), job({ id: ids[3]! }), ids[3]!)
  t.equal(cache.size, 3)
  t.equal(cache.get('alpha', ids[1]!), undefined, 'the least recently used went')
  t.equal(cache.get('alpha', ids[0]!), ids[0])
  t.equal(cache.get('alpha', ids[3]!), ids[3])

  cache.set(cache.generation(), job({ id: ids[2]! }), 'x'.repeat(501))
  t.equal(cache.get('alpha', ids[2]!), ids[2], 'a view beyond maxEntryChars is not cached (the old entry stays)')
  cache.set(cache.generation(), job({ id: ids[1]! }), 'y'.repeat(480))
  cache.set(cache.generation(), job({ id: ids[2]! }), 'z'.repeat(480))
  t.ok(cache.size <= 3)
  t.equal(cache.get('alpha', ids[2]!), 'z'.repeat(480))
  t.equal(cache.get('alpha', ids[1]!), 'y'.repeat(480), 'two 480-character views fit in 990 characters')
  t.equal(cache.get('alpha', ids[0]!), undefined, 'older entries went to stay within maxChars')
  t.equal(cache.get('alpha', ids[3]!), undefined)
})
