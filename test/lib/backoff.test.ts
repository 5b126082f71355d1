import { getEventListeners } from 'node:events'
import t from 'tap'
import { backoffDelay, sleep } from '../../src/lib/time.js'
import { parseRetryAfter } from '../../src/upstreams/retry-after.js'

t.test('backoffDelay: equal jitter within [ceiling/2, ceiling]', async t => {
  const opts = { baseMs: 100, maxMs: 1000 }
  t.equal(backoffDelay(1, opts, () => 0), 50)
  t.equal(backoffDelay(1, opts, () => 0.999999), 99)
  t.equal(backoffDelay(2, opts, () => 0), 100)
  t.equal(backoffDelay(3, opts, () => 0.5), 300)
  // Capped: attempt 5 would be 1600 uncapped.
  t.equal(backoffDelay(5, opts, () => 0), 500)
  t.equal(backoffDelay(5, opts, () => 1), 1000, 'a random() of exactly 1 stays within the cap')
  t.equal(backoffDelay(5000, opts, () => 0.5), 750, 'huge attempt counts neither overflow nor NaN')
  t.equal(backoffDelay(5000, { baseMs: 0, maxMs: 1000 }, () => 0.5), 0)
  for (let attempt = 1; attempt <= 12; attempt++) {
    const ceiling = Math.min(1000, 100 * 2 ** (attempt - 1))
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt, opts)
      t.ok(d >= ceiling / 2 && d <= ceiling, `attempt ${attempt}: ${d} in bounds`)
    }
  }
  t.throws(() => backoffDelay(0, opts), RangeError)
  t.throws(() => backoffDelay(1.5, opts), RangeError)
})

t.test('parseRetryAfter: delay-seconds and HTTP-date forms', async t => {
  const now = Date.parse('2015-10-21T07:28:00Z')
  t.equal(parseRetryAfter('120', now), 120_000)
  t.equal(parseRetryAfter(' 0 ', now), 0)
  t.equal(parseRetryAfter('1.5', now), 1500)
  t.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30_000, 'IMF-fixdate')
  t.equal(parseRetryAfter('Wednesday, 21-Oct-15 07:28:10 GMT', now), 10_000, 'RFC 850')
  t.equal(parseRetryAfter('Wed Oct 21 07:28:05 2015', now - new Date(now).getTimezoneOffset() * 60_000), 5000, 'asctime (local time in V8)')
  t.equal(parseRetryAfter('Wed, 21 Oct 2015 07:00:00 GMT', now), 0, 'a date in the past means now')
  for (const bad of [undefined, null, '', '  ', '-5', 'soon', '12-3', '1e3', 'Wed, 99 Foo 2015']) {
    t.equal(parseRetryAfter(bad, now), undefined, `${JSON.stringify(bad)} is unusable`)
  }
})

t.test('sleep resolves and leaves no abort listener', async t => {
  const ac = new AbortController()
  await sleep(1, ac.signal)
  t.equal(getEventListeners(ac.signal, 'abort').length, 0)
  await sleep(0)
})

t.test('sleep rejects with the abort reason at once', async t => {
  const ac = new AbortController()
  const reason = new Error('cancelled')
  const started = Date.now()
  const pending = sleep(60_000, ac.signal)
  setImmediate(() => ac.abort(reason))
  await t.rejects(pending, reason)
  t.ok(Date.now() - started < 5000, 'did not wait for the timer')
  t.equal(getEventListeners(ac.signal, 'abort').length, 0)
})

t.test('sleep on an aborted signal rejects without a timer', async t => {
  const reason = new Error('already')
  await t.rejects(sleep(60_000, AbortSignal.abort(reason)), reason)
})
