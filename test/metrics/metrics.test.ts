/**
 * `GET /metrics` through the real gateway: a DrChrono job with injected 429s and 503s, a job that fails, a Metriport
 * job finished by its webhook plus a forged delivery, then results expiring; each family shows what happened.
 */
import t, { type Test } from 'tap'
import { createMetrics, routeOf } from '../../src/metrics/metrics.js'
import { signWebhook } from '../../src/upstreams/metriport/signature.js'
import { SANDBOX_CREDENTIALS as METRIPORT } from '../../src/upstreams/metriport/env.js'
import { SANDBOX_PATIENT_IDS, startMetriportSimulator } from '../../src/upstreams/metriport/simulator/index.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

interface Sample { name: string, labels: Record<string, string>, value: number }

/** The samples of a Prometheus text exposition (enough of the format for the gateway's own output). */
function parse (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) continue
    const labels: Record<string, string> = {}
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return samples
}

/** The sum of a metric's samples whose labels include `labels`. */
function total (samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)
}

async function scrape (t: Test, gw: TestGateway): Promise<Sample[]> {
  const res = await gw.request('/metrics', { key: null })
  t.equal(res.status, 200, '/metrics needs no client key')
  t.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  return parse(await res.text())
}

const submit = async (gw: TestGateway, body: Record<string, unknown>): Promise<string> => {
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify(body) })
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`)
  return (await res.json()).id
}

t.test('metrics count jobs, upstream requests, retries, records, webhooks and expiry', async t => {
  const drchrono = await startDrchrono(t, { recordCount: { appointments: 2345 }, faults: { retryAfterSeconds: 1 } })
  const metriport = await startMetriportSimulator({ seed: 7, delayMs: 100 })
  t.teardown(() => metriport.close())
  const gw = await startGateway(t, {
    env: {
      ...drchronoEnv(drchrono),
      METRIPORT_BASE_URL: metriport.url,
      METRIPORT_API_KEY: METRIPORT.apiKey,
      METRIPORT_WEBHOOK_KEY: METRIPORT.webhookKey,
      // Long enough to scrape the finished jobs before their results expire, short enough to see them expire.
      RESULT_TTL_SECONDS: '8',
    },
  })
  metriport.state.setWebhookUrl(`${gw.url}/webhooks/metriport`)

  drchrono.state.throttleNext(3, 1)
  drchrono.state.failNext(3, 503)
  const done = await waitForJob(gw, await submit(gw, { upstream: 'drchrono', resource: 'appointments', params: { since: '2024-02-01' } }))
  t.equal(done.status, 'completed', JSON.stringify(done.error))
  const documents = await waitForJob(gw, await submit(gw, { upstream: 'metriport', resource: 'document-download-urls', params: { patientId: SANDBOX_PATIENT_IDS[0] } }))
  t.equal(documents.status, 'completed', JSON.stringify(documents.error))
  drchrono.state.revokeAccessToken()
  const failed = await waitForJob(gw, await submit(gw, { upstream: 'drchrono', resource: 'appointments', params: { since: '2024-03-01' } }))
  t.match(failed, { status: 'failed', error: { code: 'upstream_unauthorized' } })
  const forged = JSON.stringify({ meta: { type: 'ping' }, ping: 'x' })
  const rejected = await fetch(`${gw.url}/webhooks/metriport`, { method: 'POST', body: forged, headers: { 'content-type': 'application/json', 'x-metriport-signature': signWebhook(forged, 'not-the-key') } })
  t.equal(rejected.status, 401)

  const m = await scrape(t, gw)
  t.equal(total(m, 'bulk_gateway_jobs', { upstream: 'drchrono', status: 'completed' }), 1, 'the jobs gauge counts in the database')
  t.equal(total(m, 'bulk_gateway_jobs', { upstream: 'drchrono', status: 'failed' }), 1)
  t.equal(total(m, 'bulk_gateway_jobs', { upstream: 'drchrono', status: 'queued' }), 0, 'statuses without jobs read 0')
  t.equal(total(m, 'bulk_gateway_jobs_finished_total', { upstream: 'drchrono', outcome: 'completed' }), 1)
  t.equal(total(m, 'bulk_gateway_jobs_finished_total', { upstream: 'drchrono', outcome: 'failed', code: 'upstream_unauthorized' }), 1)
  t.equal(total(m, 'bulk_gateway_jobs_finished_total', { upstream: 'metriport', outcome: 'completed' }), 1, 'a job its webhook finished counts too')
  t.equal(total(m, 'bulk_gateway_job_duration_seconds_count', { upstream: 'drchrono', outcome: 'completed' }), 1)
  t.ok(total(m, 'bulk_gateway_job_duration_seconds_sum', { upstream: 'drchrono', outcome: 'completed' }) > 1, 'the faults took over a second')
  t.equal(total(m, 'bulk_gateway_job_duration_seconds_count', { upstream: 'metriport', outcome: 'completed' }), 1)

  t.equal(total(m, 'bulk_gateway_records_stored_total', { upstream: 'drchrono' }), done.progress.records, 'records stored match the job')
  t.equal(total(m, 'bulk_gateway_records_stored_total', { upstream: 'metriport' }), documents.progress.records)

  const requests = m.filter(s => s.name === 'bulk_gateway_upstream_requests_total' && s.labels.upstream === 'drchrono')
  for (const status of ['200', '201', '401', '429', '503']) t.ok(requests.some(s => s.labels.status === status), `requests answered ${status} are counted`)
  t.equal(total(m, 'bulk_gateway_upstream_requests_total', { upstream: 'drchrono', status: '429' }), 3)
  t.equal(total(m, 'bulk_gateway_upstream_requests_total', { upstream: 'drchrono', status: '503' }), 3)
  t.same([...new Set(requests.map(s => s.labels.route))].sort(), ['/api/appointments_list'], 'one route: no ids, no query')
  t.ok(requests.every(s => s.labels.method === 'GET' || s.labels.method === 'POST'))
  t.ok(total(m, 'bulk_gateway_upstream_requests_total', { upstream: 'metriport' }) >= 1)
  t.equal(total(m, 'bulk_gateway_upstream_retries_total', { upstream: 'drchrono' }), 6, 'each 429 and 503 was retried')
  t.equal(total(m, 'bulk_gateway_upstream_retries_total', { upstream: 'drchrono', reason: '429' }), 3)
  t.equal(total(m, 'bulk_gateway_upstream_throttled_total', { upstream: 'drchrono' }), 3)
  t.equal(total(m, 'bulk_gateway_upstream_request_duration_seconds_count', { upstream: 'drchrono' }),
    total(m, 'bulk_gateway_upstream_requests_total', { upstream: 'drchrono' }), 'every answered attempt is timed')

  t.equal(total(m, 'bulk_gateway_webhook_deliveries_total', { upstream: 'metriport', outcome: 'applied' }), 1)
  t.equal(total(m, 'bulk_gateway_webhook_deliveries_total', { upstream: 'metriport', outcome: 'rejected' }), 1)
  t.ok(m.some(s => s.name === 'bulk_gateway_worker_leases_held'), 'the leases gauge is there')
  t.equal(total(m, 'bulk_gateway_worker_leases_held'), 0, 'no job runs now')
  t.ok(total(m, 'process_resident_memory_bytes') > 0, 'the process\'s own metrics are on the same registry')
  const labels = m.flatMap(s => Object.values(s.labels)).join(' ')
  for (const id of [done.id, documents.id, failed.id, 'alpha']) t.notOk(labels.includes(id), `no label carries ${id}`)

  // Results expire after RESULT_TTL_SECONDS; the sweeper marks the completed jobs and deletes their rows.
  await waitForJob(gw, done.id, { timeoutMs: 30_000, until: j => j.status === 'expired' })
  await waitForJob(gw, documents.id, { timeoutMs: 30_000, until: j => j.status === 'expired' })
  let later = await scrape(t, gw)
  for (let i = 0; i < 100 && total(later, 'bulk_gateway_result_rows_deleted_total') < done.progress.records + documents.progress.records; i++) {
    await new Promise(resolve => setTimeout(resolve, 100))
    later = await scrape(t, gw)
  }
  t.equal(total(later, 'bulk_gateway_results_expired_total'), 2)
  t.equal(total(later, 'bulk_gateway_result_rows_deleted_total'), done.progress.records + documents.progress.records)
  t.equal(total(later, 'bulk_gateway_jobs', { upstream: 'drchrono', status: 'expired' }), 1)
  t.equal(total(later, 'bulk_gateway_jobs', { upstream: 'drchrono', status: 'completed' }), 0, 'a status emptied reads 0, not nothing')
})

t.test('apps built side by side keep their own registries', async t => {
  const [a, b] = [await startGateway(t, { startWorkers: false }), await startGateway(t, { startWorkers: false })]
  t.not(a.app.metrics.registry, b.app.metrics.registry)
  a.app.metrics.observe.recordsStored('drchrono', 5)
  t.equal(total(await scrape(t, a), 'bulk_gateway_records_stored_total'), 5)
  t.equal(total(await scrape(t, b), 'bulk_gateway_records_stored_total'), 0)
})

t.test('route labels hold no ids, and their number per upstream is capped', async t => {
  t.equal(routeOf('https://drchrono.example/api/appointments_list'), '/api/appointments_list')
  t.equal(routeOf('https://api.cliniko.com/v1/patients/123456/'), '/v1/patients/:id/', 'numbers go, API versions stay')
  t.equal(routeOf('https://clinia.example/v1/resources/bulk/3f2b8c1e-9d4a-4f5e-8b6a-0c1d2e3f4a5b'), '/v1/resources/bulk/:id')
  t.equal(routeOf('https://api.openconceptlab.org/orgs/CIEL/sources/CIEL/v2024-01-05/concepts/'), '/orgs/CIEL/sources/CIEL/:id/concepts/')
  const metrics = createMetrics({ countJobs: async () => [], onCollectError: () => {} })
  t.teardown(() => metrics.close())
  for (let i = 0; i < 60; i++) {
    metrics.upstreamEvent({ type: 'response', upstream: 'ocl', method: 'GET', url: `https://ocl.example/orgs/owner-${String.fromCharCode(97 + i % 26)}${'x'.repeat(Math.floor(i / 26))}/sources/`, attempt: 1, status: 200, durationMs: 5 })
  }
  const requests = parse(await metrics.registry.metrics()).filter(s => s.name === 'bulk_gateway_upstream_requests_total')
  t.equal(requests.length, 51, '50 routes, then other')
  t.equal(total(requests, 'bulk_gateway_upstream_requests_total', { route: 'other' }), 10)
})
