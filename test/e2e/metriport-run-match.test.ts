/**
 * A Metriport message finishes only the job of its own run: the requestId the job was given AND the patient the
 * job asked for. A correctly signed message that names the job's requestId with another patient (a reused or
 * guessed id) is acknowledged, changes no job, and the job still completes with its own run's documents.
 */
import pg from 'pg'
import t from 'tap'
import { SANDBOX_CREDENTIALS } from '../../src/upstreams/metriport/env.js'
import { SANDBOX_PATIENT_IDS, startMetriportSimulator } from '../../src/upstreams/metriport/simulator/index.js'
import { DOCUMENT_URLS_TYPE } from '../../src/upstreams/metriport/webhook.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const [P0, P1] = SANDBOX_PATIENT_IDS as [string, string, string]

async function parkedRun (gw: TestGateway, jobId: string): Promise<string> {
  const client = new pg.Client({ connectionString: gw.databaseUrl })
  await client.connect()
  try {
    for (let i = 0; i < 200; i++) {
      const { rows: [row] } = await client.query<{ waiting_for: string | null, request_id: string | null }>(
        "SELECT waiting_for, upstream_info->>'requestId' AS request_id FROM jobs WHERE id = $1", [jobId])
      if (row?.waiting_for != null && row.request_id !== null) return row.request_id
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    throw new Error('the job never parked')
  } finally {
    await client.end()
  }
}

t.test('a message for the job\'s requestId but another patient does not finish the job', async t => {
  const sim = await startMetriportSimulator({ seed: 7, delayMs: 'never' })
  t.teardown(() => sim.close())
  const gw = await startGateway(t, {
    env: { METRIPORT_BASE_URL: sim.url, METRIPORT_API_KEY: SANDBOX_CREDENTIALS.apiKey, METRIPORT_WEBHOOK_KEY: SANDBOX_CREDENTIALS.webhookKey },
  })
  sim.state.setWebhookUrl(`${gw.url}/webhooks/metriport`)
  const submitted = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'metriport', resource: 'document-download-urls', params: { patientId: P0 } }) })
  t.equal(submitted.status, 202)
  const { id } = await submitted.json()
  const requestId = await parkedRun(gw, id)

  const planted = '{"id":"planted","fileName":"x.pdf","url":"https://attacker.example/x"}'
  const message = `{"meta":{"messageId":"m-other-patient","requestId":${JSON.stringify(requestId)},"type":"${DOCUMENT_URLS_TYPE}"},` +
    `"patients":[{"patientId":${JSON.stringify(P1)},"status":"completed","documents":[${planted}]}]}`
  const answer = await sim.state.send(message)
  t.equal(answer.status, 200, 'acknowledged (Metriport disables a webhook that is refused)')
  t.match(gw.logs.join(''), /"delivery":"stored"/, 'kept, matched to no job')
  const waiting = await (await gw.request(`/jobs/${id}`)).json()
  t.equal(waiting.status, 'running', 'the job still waits for its own run')

  await sim.state.deliverNow(requestId)
  const done = await waitForJob(gw, id)
  t.equal(done.status, 'completed', `then its own run's message completes it (${JSON.stringify(done.error)})`)
  const page = await (await gw.request(`/jobs/${id}/results`)).json()
  t.ok(page.total > 0)
  t.ok(page.data.every((d: { patientId: string, id: string }) => d.patientId === P0 && d.id !== 'planted'), 'only its own patient\'s documents')
})
