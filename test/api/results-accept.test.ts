/** Which `Accept` header asks `GET /jobs/{id}/results` for NDJSON (src/api/results.ts). */
import t from 'tap'
import { wantsNdjson } from '../../src/api/results.js'

t.test('Accept negotiation for NDJSON', async t => {
  t.equal(wantsNdjson(undefined), false)
  t.equal(wantsNdjson('application/json'), false)
  t.equal(wantsNdjson('*/*'), false)
  t.equal(wantsNdjson('application/x-ndjson'), true)
  t.equal(wantsNdjson('application/ndjson'), true)
  t.equal(wantsNdjson('application/json;q=0.9, application/x-ndjson'), true)
  t.equal(wantsNdjson('application/json, application/x-ndjson;q=0.5'), false)
  t.equal(wantsNdjson('application/x-ndjson;q=0'), false)
})
