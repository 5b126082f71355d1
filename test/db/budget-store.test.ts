/**
 * The PostgreSQL request budget: replicas (here, two stores on two pools) share one count, on the database's
 * clock; clock windows reset on the clock; a pause reaches every replica; waiting clients are served fairly.
 */
import pg from 'pg'
import t, { type Test } from 'tap'
import { PgBudgetStore, type BudgetEvent } from '../../src/db/budget-store.js'
import type { BudgetSpec, BudgetWait } from '../../src/lib/budget-windows.js'
import { sql, testDatabase } from '../helpers/database.js'

async function replicas (t: Test, n: number, events: BudgetEvent[] = []) {
  const url = await testDatabase(t)
  const stores = Array.from({ length: n }, () => {
    const pool = new pg.Pool({ connectionString: url, max: 4 })
    t.teardown(() => pool.end())
    // Waiter rows renewed every 50 ms are kept for a second: a look may wait its turn behind the process's other
    // looks first, which on a loaded machine can outlast the default three rechecks.
    return new PgBudgetStore(pool, { recheckMs: 50, staleWaiterMs: 1000, observe: e => events.push(e) })
  })
  /** The grants counted for `key`, as epoch ms on the database's clock, with their clients, in order. */
  const grants = async (key: string) => (await sql<{ t: number, client: string }>(url,
    `SELECT (extract(epoch FROM sent_at) * 1000)::float8 AS t, client_id AS client FROM upstream_budget_grants
     WHERE key = $1 ORDER BY sent_at, id`, [key]))
  return { url, stores, grants }
}

/**
 * A budget of `limit` per sliding `windowMs`. Its second, roomy window keeps every grant counted for an hour (rows
 * are deleted once no window counts them), so the test can read them all back, whenever it runs.
 */
const sliding = (key: string, limit: number, windowMs: number): BudgetSpec => ({
  upstream: 'drchrono',
  key,
  windows: [
    { limit, windowMs, kind: 'sliding', name: 'second', label: 'the burst ceiling' },
    { limit: 1_000_000, windowMs: 3_600_000, kind: 'sliding', name: 'hour', label: 'a roomy hour that keeps the grants' },
  ],
})
const taker = (clientId: string, waits: Array<BudgetWait | null> = []) =>
  ({ clientId, onWait: (_waiter: string, w: BudgetWait | null) => { waits.push(w) } })

t.test('two replicas never hold more than the ceiling in any sliding second', async t => {
  const { stores, grants } = await replicas(t, 2)
  const spec = sliding('k1', 8, 1000)
  await Promise.all(Array.from({ length: 40 }, (_, i) => stores[i % 2]!.take(spec, taker(`c${i % 3}`), AbortSignal.timeout(60_000))))
  const times = (await grants('k1')).map(g => g.t)
  t.equal(times.length, 40, 'every request was granted once')
  const busiest = Math.max(...times.map(start => times.filter(x => x >= start && x < start + 1000).length))
  t.comment(`busiest second: ${busiest} of 8 allowed, 40 requests over ${((times.at(-1)! - times[0]!) / 1000).toFixed(2)} s`)
  t.ok(busiest <= 8, `no second holds more than 8 (busiest: ${busiest})`)
  t.equal(busiest, 8, 'and the ceiling is used, not wasted')
})

t.test('a clock window resets on the clock, not a window after the first request', async t => {
  const { stores, grants } = await replicas(t, 2)
  const spec: BudgetSpec = {
    upstream: 'drchrono',
    key: 'k2',
    windows: [
      { limit: 3, windowMs: 1000, kind: 'clock', name: 'second', label: 'the budget per clock second' },
      { limit: 1_000_000, windowMs: 3_600_000, kind: 'sliding', name: 'hour', label: 'a roomy hour that keeps the grants' },
    ],
  }
  await Promise.all(Array.from({ length: 9 }, (_, i) => stores[i % 2]!.take(spec, undefined, AbortSignal.timeout(60_000))))
  const byWindow = new Map<number, number>()
  for (const { t: at } of await grants('k2')) byWindow.set(Math.floor(at / 1000), (byWindow.get(Math.floor(at / 1000)) ?? 0) + 1)
  t.ok([...byWindow.values()].every(n => n <= 3), `no clock second holds more than 3: ${JSON.stringify([...byWindow.values()])}`)
  t.ok(byWindow.size >= 3, 'nine requests needed three clock windows')
})

t.test('a pause set by one replica (a 429) holds the other, and the job is told until when', async t => {
  const { url, stores, grants } = await replicas(t, 2)
  const spec = sliding('k3', 100, 1000)
  await stores[0]!.pause(spec, Date.now() + 1500)
  const waits: Array<BudgetWait | null> = []
  await stores[1]!.take(spec, taker('c', waits), AbortSignal.timeout(60_000))
  const [pause] = await sql<{ until: number }>(url, 'SELECT (extract(epoch FROM paused_until) * 1000)::float8 AS until FROM upstream_budget_pauses WHERE key = $1', ['k3'])
  const [grant] = await grants('k3')
  t.ok(grant!.t >= pause!.until, 'the request went only once the pause was over (database clock)')
  t.equal(waits.length, 2)
  t.match(waits[0], { reason: /429/ }, 'the wait names the 429')
  t.equal(waits.at(-1), null, 'and the job is told when it goes on')
  await stores[1]!.pause(spec, Date.now() + 60_000)
  const reason = new Error('cancelled')
  const controller = new AbortController()
  const waiting = stores[0]!.take(spec, taker('c'), controller.signal)
  setTimeout(() => controller.abort(reason), 100)
  await t.rejects(waiting, reason, 'a cancel ends the wait with its reason')
  t.same(await sql(url, 'SELECT * FROM upstream_budget_waiters'), [], 'and leaves no waiter behind')
})

t.test('a less-served client\'s job is not held back for a busy client\'s whole run', async t => {
  const events: BudgetEvent[] = []
  const { stores, grants } = await replicas(t, 2, events)
  const spec = sliding('k4', 2, 400)
  // Client "big" queues 16 requests (a long job's pages); "small" then runs a job of 3 requests, one after another.
  const big = Array.from({ length: 16 }, (_, i) => stores[i % 2]!.take(spec, taker('big'), AbortSignal.timeout(60_000)))
  while ((await grants('k4')).length < 4) await new Promise(resolve => setTimeout(resolve, 20))
  const before = (await grants('k4')).length
  for (let i = 0; i < 3; i++) await stores[1]!.take(spec, taker('small'), AbortSignal.timeout(60_000))
  await Promise.all(big)
  const order = (await grants('k4')).map(g => g.client)
  const bigMeanwhile = order.slice(before, order.lastIndexOf('small')).filter(c => c === 'big').length
  t.comment(`while small's 3 requests waited, big sent ${bigMeanwhile} (12 of big's were waiting; order: ${order.join(' ')})`)
  t.ok(bigMeanwhile <= 4, `small's job went ahead of most of big's waiting requests (big sent ${bigMeanwhile} meanwhile)`)
  t.ok(events.some(e => e.type === 'waited' && e.seconds > 0), 'waiting time is reported')
  t.ok(events.some(e => e.type === 'granted' && e.window === 'second'), 'remaining requests are reported per window')
})

t.test('requests of one replica with room in the budget go without waiting for each other', async t => {
  const events: BudgetEvent[] = []
  const { url, stores, grants } = await replicas(t, 1, events)
  const spec = sliding('k5', 1000, 1000)
  await Promise.all(Array.from({ length: 20 }, () => stores[0]!.take(spec, taker('c'), AbortSignal.timeout(60_000))))
  t.equal((await grants('k5')).length, 20)
  // Looks at once would meet each other's advisory lock: each refused one sleeps and writes a waiter row.
  t.same(events.filter(e => e.type === 'waited'), [], 'no request slept')
  t.same(await sql(url, 'SELECT * FROM upstream_budget_waiters'), [], 'and none was recorded as waiting')
})

t.test('a request whose job stops while it waits for its turn leaves at once, and is never counted', async t => {
  const { url, grants } = await replicas(t, 0)
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  t.teardown(() => pool.end())
  const store = new PgBudgetStore(pool, { recheckMs: 50 })
  const spec = sliding('k6', 1000, 1000)
  // The pool's only connection is taken: the first look waits for it, the second waits for the first.
  const held = await pool.connect()
  const first = store.take(spec, taker('c'), AbortSignal.timeout(60_000))
  const controller = new AbortController()
  const second = store.take(spec, taker('c'), controller.signal)
  const reason = new Error('job cancelled')
  controller.abort(reason)
  await t.rejects(second, reason, 'the waiting request ends with its job\'s reason, while the look before it still waits')
  held.release()
  await first
  t.equal((await grants('k6')).length, 1, 'only the first request was counted')
})
