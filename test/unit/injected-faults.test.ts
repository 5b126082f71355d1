import t from 'tap'
import { InjectedFaults } from '../../src/upstreams/simulator-kit/injected-faults.js'

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
