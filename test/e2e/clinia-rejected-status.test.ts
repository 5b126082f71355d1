/**
 * Clinia's REJECTED answer under every HTTP status it may come with (UNCONFIRMED, likely 400; 200, 409 and 422 are
 * plausible), through the real gateway: the job fails with upstream_rejected, and its receipts, NOT_SENT ones
 * included, stay readable at /jobs/:id/results.
 */
import t from 'tap'
import { REJECTED_STATUSES, startCliniaSimulator } from '../../src/upstreams/clinia/simulator/index.js'
import { startGateway, waitForJob } from '../helpers/gateway.js'

const API_KEY = 'clinia-e2e-key-0123456789'

const provider = (id: string, data: Record<string, unknown> = {}) =>
  ({ action: 'CREATE', create: { id, type: 'provider', data: { name: 'Dr. Confidential', ...data } } })

t.test('a REJECTED chunk under 400, 200, 409 and 422: upstream_rejected, receipts and NOT_SENT ones readable', async t => {
  const sim = await startCliniaSimulator({ apiKey: API_KEY, sourceKey: 'ehr-prod', pendingPolls: 1 })
  t.teardown(() => sim.close())
  const gw = await startGateway(t, {
    env: {
      CLINIA_BASE_URL: sim.url,
      CLINIA_API_KEY: API_KEY,
      CLINIA_SOURCE_KEY: 'ehr-prod',
      CLINIA_MAX_OPERATIONS: '2',
      CLINIA_POLL_INITIAL_MS: '5',
      CLINIA_POLL_MAX_MS: '20',
    },
  })
  for (const status of REJECTED_STATUSES) {
    sim.state.rejectedStatus = status
    const submitsBefore = sim.state.stats.submits
    // Ids differ per round: the simulator keeps the records of the rounds before.
    const operations = [provider(`a${status}`), provider(`b${status}`), provider(`c${status}`, { practiceNumber: 'not a number' }), provider(`d${status}`), provider(`e${status}`)]
    const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'clinia', resource: 'resources', operations }) })
    t.equal(res.status, 202, `${status}: accepted by the gateway`)
    const failed = await waitForJob(gw, (await res.json()).id)
    t.equal(failed.status, 'failed', `${status}: the job failed`)
    t.match(failed.error, { code: 'upstream_rejected', upstreamStatus: status, message: new RegExp(`chunk 2 of 3 was REJECTED by Clinia \\(HTTP ${status}\\)`) }, `${status}: upstream_rejected`)
    t.notMatch(failed.error.message, /not a number|Confidential/, `${status}: no operation data in the message`)
    t.match(failed.progress, { records: 5, pagesDone: 2, pagesTotal: 3, succeeded: 2, failed: 2 }, `${status}: progress`)

    const results = await gw.request(`/jobs/${failed.id}/results`)
    t.equal(results.status, 200, `${status}: results are readable`)
    const { data, total } = await results.json()
    t.equal(total, 5)
    t.same(data.map((r: { index: number, status: string }) => [r.index, r.status]),
      [[0, 'SUCCESS'], [1, 'SUCCESS'], [2, 'FAILURE'], [3, 'CANCELLED'], [4, 'NOT_SENT']], `${status}: every receipt`)
    t.match(data[2], { error: { type: 'INVALID_ARGUMENT' } })
    t.same(data[4], { index: 4, status: 'NOT_SENT', action: 'CREATE', targetType: 'RESOURCE', type: 'provider', id: `e${status}` })
    t.equal(sim.state.stats.submits - submitsBefore, 2, `${status}: the chunk after the rejected one was never sent`)
  }
})
