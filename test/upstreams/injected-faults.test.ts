import t from 'tap'
import { Countdown, InjectedFaults } from '../../src/upstreams/simulator-kit/injected-faults.js'

t.test('errors are consumed before throttles, one per request, then nothing', async t => {
  const faults = new InjectedFaults<500 | 503>(503)
  faults.throttleNext(1)
  faults.failNext(2, 500)
  t.same([faults.take(), faults.take(), faults.take(), faults.take()],
    [{ kind: 'error', status: 500 }, { kind: 'error', status: 500 }, { kind: 'throttle' }, null])
  faults.failNext(1)
  t.same(faults.take(), { kind: 'error', status: 503 }, 'the default status')
  faults.reset({ throttles: 1 })
  t.same([faults.take(), faults.take()], [{ kind: 'throttle' }, null])
})

t.test('ratios draw once the counted faults are used up, errors before throttles, the same under the same seed', async t => {
  const faults = new InjectedFaults<500 | 503>(503)
  faults.reset({ errors: 1, throttles: 1, errorRatio: 1, throttleRatio: 1, seed: 7 })
  t.same([faults.take(), faults.take(), faults.take()],
    [{ kind: 'error', status: 503 }, { kind: 'error', status: 503 }, { kind: 'error', status: 503 }], 'an error ratio of 1 leaves no room for throttles')
  faults.setRatios({ error: 0, status: 500 })
  t.same([faults.take(), faults.take()], [{ kind: 'throttle' }, { kind: 'throttle' }], 'the counted throttle, then one by ratio')
  faults.failNext(1)
  t.same(faults.take(), { kind: 'error', status: 503 }, 'failNext names its own status')

  const draws = (seed: number): unknown[] => {
    faults.reset({ errorRatio: 0.3, throttleRatio: 0.3, seed })
    return Array.from({ length: 40 }, () => faults.take()?.kind ?? 'pass')
  }
  const first = draws(42)
  t.same(draws(42), first, 'the same seed, the same faults')
  t.ok(first.includes('error') && first.includes('throttle') && first.includes('pass'), 'a mix of all three')
  t.notSame(draws(43), first, 'another seed, other faults')
  faults.reset({ seed: 42 })
  t.same(Array.from({ length: 10 }, () => faults.take()), Array(10).fill(null), 'reset clears the ratios')
})

t.test('a countdown answers true the armed number of times, a new count replacing the old', async t => {
  const next = new Countdown()
  t.equal(next.take(), false, 'nothing armed')
  next.arm(2)
  t.same([next.take(), next.take(), next.take()], [true, true, false])
  next.arm(3)
  next.arm(1)
  t.same([next.take(), next.take()], [true, false], 'the last count wins')
})
