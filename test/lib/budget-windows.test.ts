import t from 'tap'
import { budgetWaitMs, countedSince, windowUse, windowWaitMs, type BudgetSpec, type BudgetWindow } from '../../src/lib/budget-windows.js'

const sliding: BudgetWindow = { limit: 3, windowMs: 1000, kind: 'sliding', name: 'second', label: 'the ceiling' }
const hourly: BudgetWindow = { limit: 2, windowMs: 3_600_000, kind: 'clock', name: 'hour', label: 'the hourly budget' }

t.test('a sliding window frees a place when the limit-th newest request leaves it', async t => {
  const sent = [100, 200, 300, 400]
  t.same(windowUse(sliding, sent, 1000), { count: 4, limitthNewest: 200 })
  t.equal(windowWaitMs(sliding, windowUse(sliding, sent, 1000), 1000), 200, '200 + 1000 - 1000')
  t.equal(windowWaitMs(sliding, windowUse(sliding, sent, 1250), 1250), 0, 'by 1250 only 300 and 400 are left: one more fits')
  t.same(windowUse(sliding, [0, 1000], 1000), { count: 1, limitthNewest: null }, 'a request exactly a window old is out')
})

t.test('a clock window resets at the top of the hour (UTC), however recent its requests', async t => {
  const hour = 3_600_000 * 490_000
  const sent = [hour + 10, hour + 3_599_000]
  t.equal(windowWaitMs(hourly, windowUse(hourly, sent, hour + 3_599_500), hour + 3_599_500), 500, 'full: wait for the top of the hour')
  t.equal(windowWaitMs(hourly, windowUse(hourly, sent, hour + 3_600_000), hour + 3_600_000), 0, 'a new hour counts none of them')
  t.equal(countedSince({ upstream: 'x', key: 'k', windows: [sliding, hourly] }, hour + 5000), hour, 'rows older than the hour can go')
})

t.test('a budget waits for the longest of its windows and of a pause, and says which', async t => {
  const spec: BudgetSpec = { upstream: 'drchrono', key: 'k', windows: [sliding, hourly] }
  const now = 3_600_000 * 490_000 + 1000
  const uses = [{ count: 3, limitthNewest: now - 900 }, { count: 0, limitthNewest: null }]
  t.same(budgetWaitMs(spec, uses, 0, now), { waitMs: 100, reason: 'the ceiling' })
  t.same(budgetWaitMs(spec, uses, now + 5000, now), { waitMs: 5000, reason: 'the end of a 429 pause (drchrono asked to slow down)' })
  t.same(budgetWaitMs(spec, [{ count: 0, limitthNewest: null }, { count: 2, limitthNewest: null }], 0, now), { waitMs: 3_599_000, reason: 'the hourly budget' })
})
