/** Which path segments are job ids (src/api/job-ids.ts). */
import t from 'tap'
import { isJobId } from '../../src/api/job-ids.js'

t.test('a job id is a UUID; anything else is refused', async t => {
  t.equal(isJobId('0b8c1a0e-8f3e-4f6a-9d2c-1e2f3a4b5c6d'), true)
  t.equal(isJobId('0b8c1a0e'), false)
})
