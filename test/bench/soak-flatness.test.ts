import t from 'tap'
import { flatness } from '../../bench/soak-flatness.js'

t.test('a steady series with noise is flat', async t => {
  t.ok(flatness({ name: 'rows', values: [1000, 1040, 980, 1010, 995, 1030, 1005, 990, 1020], slack: 50 }).flat)
})

t.test('a series that grows a little every minute is not, though no step is large', async t => {
  const values = Array.from({ length: 12 }, (_, i) => 1000 + i * 30)
  t.notOk(flatness({ name: 'rows', values, slack: 50 }).flat)
})

t.test('a spike beyond the bound is not flat, even if it comes back', async t => {
  t.notOk(flatness({ name: 'rss', values: [100, 100, 100, 200, 100, 100], slack: 10 }).flat)
})

t.test('no values: nothing to judge, not flat', async t => {
  t.notOk(flatness({ name: 'x', values: [], slack: 1 }).flat)
})

t.test('a snapshot that swings with what is in flight is flat when it swings no higher than it already did', async t => {
  // The result rows of one soak, minute by minute: no trend, and a peak just above the first third's highest.
  const values = [25009, 14727, 16051, 24336, 16706, 13312, 21275, 14378, 7970, 18981, 20096, 8430, 14239, 25639, 17778]
  t.ok(flatness({ name: 'result_pages rows', values, slack: 50 }).flat)
  t.notOk(flatness({ name: 'result_pages rows', values: [...values.slice(0, -1), 40000], slack: 50 }).flat, 'well above it is not')
})
