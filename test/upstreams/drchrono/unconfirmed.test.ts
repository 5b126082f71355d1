/**
 * What docs/UPSTREAMS.md leaves UNCONFIRMED about DrChrono's answers, besides pages past the end
 * (past-end.test.ts): the body of a poll while the list is generated, and what a 429 says about the wait.
 * The simulator plays each variant; a job completes exactly under every one.
 */
import t from 'tap'
import { IN_PROGRESS_BODIES, expectedRecords } from '../../../src/upstreams/drchrono/simulator/index.js'
import { drchronoSetup, drchronoJob } from '../../helpers/drchrono-job.js'

const recordCount = { patients: 2500 }
const params = { page_size: 1000 }
const want = expectedRecords('patients', params, { recordCount }).map(r => JSON.stringify(r))

t.test('every in-progress body is read as "not ready yet", and the Complete page that follows is read', async t => {
  for (const body of IN_PROGRESS_BODIES) {
    const { state, adapter } = await drchronoSetup(t, { recordCount, inProgressPolls: 2, inProgressBody: body })
    const job = drchronoJob('patients', params)
    await adapter.run(job.ctx)
    t.same(job.records(), want, `${body}: exactly the simulator's records`)
    t.ok(state.stats.gets >= 3 * 3, `${body}: each page was polled through its in-progress answers (${state.stats.gets} polls)`)
  }
})

t.test('a 429 completes the job whether the wait comes in Retry-After, in the body, in both or in neither', async t => {
  for (const header of [true, false]) {
    for (const inBody of [true, false]) {
      const { state, adapter } = await drchronoSetup(t, {
        recordCount, faults: { throttleNext: 3, retryAfterSeconds: 1, retryAfterHeader: header }, throttleWaitInBody: inBody,
      })
      const job = drchronoJob('patients', params)
      await adapter.run(job.ctx)
      const what = `Retry-After ${header ? 'sent' : 'absent'}, wait ${inBody ? 'in' : 'not in'} the body`
      t.same(job.records(), want, `${what}: exactly the simulator's records`)
      t.equal(state.stats.throttled, 3, `${what}: the three 429s were waited out`)
    }
  }
})
