/**
 * No upstream token, client key or record content reaches the logs: a run at the most verbose level, with
 * successes, retries and failures, is grepped for planted markers and for every record's identifying fields.
 */
import t from 'tap'
import { expectedRecords } from '../../src/upstreams/drchrono/simulator/index.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { clientKeys, startGateway, waitForJob } from '../helpers/gateway.js'

t.test('logs carry no tokens, keys or record contents', async t => {
  const token = 'tok-LOGMARKER-7f3a9c1e5b'
  const recordCount = { patients: 1200 }
  const sim = await startDrchrono(t, { recordCount, accessToken: token, faults: { retryAfterSeconds: 0 } })
  const gw = await startGateway(t, { env: drchronoEnv(sim, { token }), logLevel: 'trace' })
  const post = (params: Record<string, unknown>) => gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params }) })

  sim.state.throttleNext(2, 0)
  sim.state.failNext(2, 502)
  const ok = await waitForJob(gw, (await (await post({ since: '2024-01-01', page_size: 500 })).json()).id)
  t.equal(ok.status, 'completed', JSON.stringify(ok.error))
  await (await gw.request(`/jobs/${ok.id}/results`, { headers: { accept: 'application/x-ndjson' } })).text()
  await (await gw.request(`/jobs/${ok.id}/results?limit=10`)).text()
  sim.state.revokeAccessToken()
  const failed = await waitForJob(gw, (await (await post({ since: '2024-02-01' })).json()).id)
  t.equal(failed.status, 'failed')
  await post({ since: 'james.garcia.0@example.com' }) // a client's bad value: echoed to the client only

  const logs = gw.logs.join('')
  t.ok(gw.logs.length > 20, `${gw.logs.length} log lines captured`)
  t.ok(logs.includes(ok.id), 'the job can be followed in the logs by its id')
  const records = expectedRecords('patients', { since: '2024-01-01' }, { seed: 7, recordCount })
  const secrets = [token, clientKeys.alpha, 'james.garcia.0@example.com']
  const fields = records.flatMap(r => [r.email, r.chart_id, r.cell_phone].map(String))
  t.same(secrets.filter(s => logs.includes(s)), [], 'no token, client key or planted value')
  t.same(fields.filter(f => logs.includes(f)), [], `none of ${fields.length} identifying record fields`)
})
