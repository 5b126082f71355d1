/**
 * Metriport jobs through the real gateway: the simulator on its own loopback port, pointed at the gateway's
 * `/webhooks/metriport`, and the gateway pointed at the simulator. The job completes only by webhook.
 */
import pg from 'pg'
import t, { type Test } from 'tap'
import { SANDBOX_CREDENTIALS } from '../../src/upstreams/metriport/env.js'
import { signWebhook } from '../../src/upstreams/metriport/signature.js'
import { SANDBOX_PATIENT_IDS, startMetriportSimulator, type MetriportSimulatorOptions, type RunningMetriportSimulator } from '../../src/upstreams/metriport/simulator/index.js'
import { clientKeys, startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'
import { storedCount } from '../helpers/stored-results.js'

const [P0, P1] = SANDBOX_PATIENT_IDS as [string, string, string]
const TEN_MINUTES = 600_000

async function setup (t: Test, options: MetriportSimulatorOptions = {}, env: Record<string, string> = {}): Promise<{
  sim: RunningMetriportSimulator,
  gw: TestGateway,
}> {
  const sim = await startMetriportSimulator({ seed: 7, delayMs: 200, ...options })
  t.teardown(() => sim.close())
  const gw = await startGateway(t, {
    env: { METRIPORT_BASE_URL: sim.url, METRIPORT_API_KEY: SANDBOX_CREDENTIALS.apiKey, METRIPORT_WEBHOOK_KEY: SANDBOX_CREDENTIALS.webhookKey, ...env },
  })
  sim.state.setWebhookUrl(`${gw.url}/webhooks/metriport`)
  return { sim, gw }
}

async function submit (gw: TestGateway, params: Record<string, unknown>, key = clientKeys.alpha): Promise<{ id: string }> {
  const res = await gw.request('/jobs', { key, method: 'POST', body: JSON.stringify({ upstream: 'metriport', resource: 'document-download-urls', params }) })
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`)
  return res.json()
}

async function db<T extends pg.QueryResultRow> (gw: TestGateway, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: gw.databaseUrl })
  await client.connect()
  try {
    return (await client.query<T>(text, values)).rows
  } finally {
    await client.end()
  }
}

/** Waits until the job is parked (under its run and patient) and returns the run's requestId. */
async function parkedRequestId (gw: TestGateway, jobId: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const [row] = await db<{ waiting_for: string | null, request_id: string | null }>(gw,
      'SELECT waiting_for, upstream_info->>\'requestId\' AS request_id FROM jobs WHERE id = $1', [jobId])
    if (row?.waiting_for != null && row.request_id !== null) return row.request_id
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error('the job never parked')
}

const webhook = (gw: TestGateway, body: string, signature: string | null) => fetch(`${gw.url}/webhooks/metriport`, {
  method: 'POST', body, headers: { 'content-type': 'application/json', ...(signature !== null ? { 'x-metriport-signature': signature } : {}) },
})

t.test('a job completes by webhook with exactly the documents, each with patientId and urlExpiresAt', async t => {
  const { sim, gw } = await setup(t)
  const before = Date.now()
  const job = await submit(gw, { patientId: P0, metadata: { batch: 'b1' } })
  const running = await (await gw.request(`/jobs/${job.id}`)).json()
  t.equal(running.status === 'queued' || running.status === 'running', true)
  const done = await waitForJob(gw, job.id)
  const after = Date.now()
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  await sim.state.settled()

  const [delivery] = sim.state.deliveries
  t.equal(sim.state.deliveries.length, 1)
  t.match(delivery, { kind: 'result', status: 200, ok: true, answer: {} })
  const sent = JSON.parse(delivery?.body ?? '{}')
  t.same(sent.meta.data, { batch: 'b1' }, 'metadata went to Metriport and came back')
  t.same(done.upstreamInfo, { requestId: sent.meta.requestId })
  const documents: Array<Record<string, unknown>> = sent.patients[0].documents
  t.same(done.progress, { records: documents.length, pagesDone: 1, pagesTotal: 1, percent: 100, succeeded: null, failed: null })

  const page = await (await gw.request(`/jobs/${job.id}/results`)).json()
  t.equal(page.total, documents.length)
  const expiresAt = page.data[0]?.urlExpiresAt as string
  t.ok(Date.parse(expiresAt) >= before + TEN_MINUTES && Date.parse(expiresAt) <= after + TEN_MINUTES, 'receipt time + 10 minutes')
  t.same(page.data, documents.map(d => ({ ...d, patientId: P0, urlExpiresAt: expiresAt })), 'exact records, in order')

  const ndjson = (await (await gw.request(`/jobs/${job.id}/results`, { headers: { accept: 'application/x-ndjson' } })).text()).split('\n')
  ndjson.pop()
  t.same(ndjson, documents.map(d => `${JSON.stringify(d).slice(0, -1)},"patientId":${JSON.stringify(P0)},"urlExpiresAt":"${expiresAt}"}`),
    'Metriport\'s text kept byte for byte, the two fields added last')

  const logs = gw.logs.join('')
  t.notMatch(logs, /X-Amz-Signature|amazonaws\.com/, 'signed URLs are never logged')
  t.notMatch(logs, new RegExp(SANDBOX_CREDENTIALS.webhookKey), 'nor the webhook key')
  t.match(logs, /"delivery":"(applied|stored)"/, 'the delivery is logged without its content')
})

t.test('a ping is answered at once with its pong', async t => {
  const { sim } = await setup(t)
  for (let i = 0; i < 3; i++) {
    const ping = await sim.state.ping()
    t.match(ping, { status: 200, ok: true })
    t.same(ping.answer, { pong: JSON.parse(ping.body).ping })
    t.ok(ping.durationMs < 2000, `answered in ${Math.round(ping.durationMs)} ms (Metriport allows 2 s)`)
  }
})

t.test('a message delivered twice stores its records once', async t => {
  const { sim, gw } = await setup(t, { duplicateDeliveries: true })
  const job = await submit(gw, { patientId: P1 })
  t.equal((await waitForJob(gw, job.id)).status, 'completed')
  await sim.state.settled()
  t.equal(sim.state.deliveries.length, 2)
  t.equal(sim.state.deliveries[0]?.body, sim.state.deliveries[1]?.body, 'the same message, twice')
  t.ok(sim.state.deliveries.every(d => d.status === 200), 'both acknowledged: a duplicate is not an error')
  const documents = JSON.parse(sim.state.deliveries[0]?.body ?? '{}').patients[0].documents as unknown[]
  t.equal(await storedCount(gw.databaseUrl, job.id), documents.length)
  t.equal((await (await gw.request(`/jobs/${job.id}/results`)).json()).total, documents.length)
  t.match(gw.logs.join(''), /"delivery":"duplicate"/)
})

t.test('a bad signature is 401 problem+json and changes nothing', async t => {
  const { sim, gw } = await setup(t, { delayMs: 'never' })
  const job = await submit(gw, { patientId: P0 })
  const requestId = await parkedRequestId(gw, job.id)

  const forged = await sim.state.sendForged(requestId)
  t.equal(forged.status, 401)
  t.match(forged.answer, { status: 401, title: 'Unauthorized' })
  const body = JSON.parse(forged.body) as { meta: { messageId: string } }
  const unsigned = await webhook(gw, forged.body, null)
  t.equal(unsigned.status, 401)
  t.match(unsigned.headers.get('content-type'), /^application\/problem\+json/)
  t.notMatch(await unsigned.text(), /X-Amz|amazonaws/, 'the body is not echoed')
  t.equal((await webhook(gw, forged.body, 'ab')).status, 401, 'a signature of the wrong length')

  t.equal((await (await gw.request(`/jobs/${job.id}`)).json()).status, 'running', 'the job still waits')
  t.same(await db(gw, 'SELECT message_id FROM webhook_deliveries'), [], 'nothing recorded')
  t.equal(await parkedRequestId(gw, job.id), requestId)

  await sim.state.deliverNow(requestId)
  const done = await waitForJob(gw, job.id)
  t.equal(done.status, 'completed', 'the genuine message still completes it')
  t.not(sim.state.deliveries.at(-1)?.messageId, body.meta.messageId)
})

t.test('a webhook reporting failed fails the job with upstream_failed', async t => {
  const { gw } = await setup(t, { failedPatients: [P1] })
  const failed = await waitForJob(gw, (await submit(gw, { patientId: P1 })).id)
  t.equal(failed.status, 'failed')
  t.match(failed.error, { code: 'upstream_failed' })
  t.equal((await gw.request(`/jobs/${failed.id}/results`)).status, 409)
})

t.test('no webhook before METRIPORT_WEBHOOK_TIMEOUT_SECONDS fails the job with upstream_timeout', async t => {
  const { sim, gw } = await setup(t, { delayMs: 'never' }, { METRIPORT_WEBHOOK_TIMEOUT_SECONDS: '1' })
  const job = await submit(gw, { patientId: P0 })
  const failed = await waitForJob(gw, job.id, { timeoutMs: 20_000 })
  t.equal(failed.status, 'failed')
  t.match(failed.error, { code: 'upstream_timeout' })
  const [late] = await sim.state.deliverNow()
  t.equal(late?.status, 200, 'a late webhook is still acknowledged')
  t.equal((await (await gw.request(`/jobs/${job.id}`)).json()).status, 'failed', 'and changes nothing')
})

t.test('a webhook that arrives before the job parked still completes it', async t => {
  // The start is answered only after its webhook was acknowledged: the delivery is stored, then applied at park.
  const { sim, gw } = await setup(t, { delayMs: 0, answerAfterDelivery: true })
  const done = await waitForJob(gw, (await submit(gw, { patientId: P0 })).id)
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  t.match(gw.logs.join(''), /"delivery":"stored"/, 'the webhook came first')
  t.equal(done.progress.records, JSON.parse(sim.state.deliveries[0]?.body ?? '{}').patients[0].documents.length)

  sim.state.reset()
  sim.state.setWebhookUrl(`${gw.url}/webhooks/metriport`)
  sim.state.setDelay(0)
  const quick = await waitForJob(gw, (await submit(gw, { patientId: P1 })).id)
  t.equal(quick.status, 'completed', 'delay 0: whichever comes first')
})

t.test('malformed bodies, unknown patients, other message types', async t => {
  const { gw } = await setup(t)
  const bad = await webhook(gw, '{"meta":', signWebhook('{"meta":', SANDBOX_CREDENTIALS.webhookKey))
  t.equal(bad.status, 400, 'malformed JSON with a valid signature')
  t.match(bad.headers.get('content-type'), /^application\/problem\+json/)
  const other = '{"meta":{"messageId":"m1","type":"medical.document-download"},"patients":[]}'
  const ignored = await webhook(gw, other, signWebhook(other, SANDBOX_CREDENTIALS.webhookKey))
  t.equal(ignored.status, 200)
  t.same(await ignored.json(), {})

  const missing = await waitForJob(gw, (await submit(gw, { patientId: 'not-a-patient' })).id)
  t.match(missing, { status: 'failed', error: { code: 'upstream_not_found', upstreamStatus: 404 } })
  const invalid = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'metriport', resource: 'document-download-urls', params: { patientId: P0, metadata: { k: 1 } } }) })
  t.equal(invalid.status, 400)
  t.match(await invalid.json(), { errors: [{ pointer: /^\/params\/metadata/ }] })
})

t.test('sandbox mode: the mounted simulator calls the gateway back', async t => {
  const gw = await startGateway(t, { env: { SANDBOX: 'true' } })
  const upstreams = await (await gw.request('/upstreams')).json()
  t.match(upstreams.data.find((u: { name: string }) => u.name === 'metriport'), { mode: 'sandbox' })
  const done = await waitForJob(gw, (await submit(gw, { patientId: P0 })).id)
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  t.ok(done.progress.records > 0)
})

t.test('two clients asking for the same patient at once both complete', async t => {
  const { gw } = await setup(t, { delayMs: 500 }, { METRIPORT_WEBHOOK_TIMEOUT_SECONDS: '4' })
  const a = await submit(gw, { patientId: P0 }, clientKeys.alpha)
  const b = await submit(gw, { patientId: P0 }, clientKeys.beta)
  const [ja, jb] = await Promise.all([waitForJob(gw, a.id, { timeoutMs: 20_000 }), waitForJob(gw, b.id, { key: clientKeys.beta, timeoutMs: 20_000 })])
  t.equal(ja.status, 'completed')
  t.equal(jb.status, 'completed')
})
