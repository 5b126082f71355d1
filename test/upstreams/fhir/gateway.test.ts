/** The fhir upstream end to end: the real gateway (API, PostgreSQL, worker) against the simulator over loopback. */
import t from 'tap'
import { expectedRecords, startFhirSimulator } from '../../../src/upstreams/fhir/simulator/index.js'
import { startGateway, waitForJob } from '../../helpers/gateway.js'

t.test('POST /jobs fhir system export completes, and its results are exactly the simulator\'s records', async t => {
  const sim = await startFhirSimulator({ seed: 5, pollsBeforeReady: 1, pageSize: 5 })
  t.teardown(() => sim.close())
  const gw = await startGateway(t, { env: { FHIR_BASE_URL: sim.url, FHIR_MIN_RETRY_AFTER_SECONDS: '0.01', FHIR_MAX_RETRY_AFTER_SECONDS: '0.05' } })
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'fhir', resource: 'system', params: { _type: 'Patient' } }) })
  t.equal(res.status, 202)
  const { id } = await res.json()
  const job = await waitForJob(gw, id)
  t.equal(job.status, 'completed', JSON.stringify(job.error))
  t.match(job.upstreamInfo, { requiresAccessToken: false, files: { output: 3 }, records: { output: 12, deleted: 0, error: 0 } })
  const ndjson = await (await gw.request(`/jobs/${id}/results`, { headers: { accept: 'application/x-ndjson' } })).text()
  t.same(ndjson.split('\n').slice(0, -1), expectedRecords({ seed: 5, pageSize: 5 }, { level: 'system', _type: 'Patient' }))
  const page = await (await gw.request(`/jobs/${id}/results`)).json()
  t.equal(page.total, 12)
  t.equal(sim.state.stats.cancels, 1, 'the export was released once read')
  t.notOk(gw.logs.some(l => l.includes('"resourceType"')), 'no record content in the logs')
})

t.test('a group job without groupId, and a system job with one, are refused at POST /jobs', async t => {
  const gw = await startGateway(t, { env: { FHIR_BASE_URL: 'http://127.0.0.1:9' }, startWorkers: false })
  const post = (body: unknown) => gw.request('/jobs', { method: 'POST', body: JSON.stringify(body) })
  t.equal((await post({ upstream: 'fhir', resource: 'group', params: {} })).status, 400)
  t.equal((await post({ upstream: 'fhir', resource: 'system', params: { groupId: 'x' } })).status, 400)
  t.equal((await post({ upstream: 'fhir', resource: 'system', params: { _since: '2024-01-01' } })).status, 400)
  t.equal((await post({ upstream: 'fhir', resource: 'group', params: { groupId: '../x' } })).status, 400)
})
