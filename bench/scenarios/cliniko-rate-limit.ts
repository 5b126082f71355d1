/**
 * Target 6: 20 000 Cliniko records, 100 a page, under Cliniko's 200 requests a minute, enforced by the simulator
 * (a sliding window per user, 429 beyond it). The bound is the limit itself: 200 pages / 200 a minute = 60 s.
 * Line 6c: two gateway processes on one database and one key, two jobs of 150 pages each: the budget is shared
 * through the database, so together they stay under the limit; the 201st request cannot go before 60 s.
 */
import { SANDBOX_API_KEY, SANDBOX_USER_AGENT, startClinikoSimulator } from '../../src/upstreams/cliniko/simulator/index.js'
import { startGateway, type GatewayProcess } from '../gateway-process.js'
import { serverSeconds, submitJob, waitForJob, warmUpJob } from '../jobs.js'
import { seconds, times, type Line } from '../report.js'

const RECORDS = 20_000
const PER_PAGE = 100
const PER_MINUTE = 200
const RESOURCE = 'invoices'
/** A one-page list for the warm-up job: one request of the minute's 200, against a limit kept 5% below. */
const WARM_UP_RESOURCE = 'businesses'

export async function clinikoUnderRateLimit (databaseUrl: string, log: (s: string) => void): Promise<Line[]> {
  const sim = await startClinikoSimulator({ seed: 7, rateLimit: PER_MINUTE, recordCount: { [RESOURCE]: RECORDS } })
  const gw = await startGateway(databaseUrl, {
    UPSTREAMS: 'cliniko',
    CLINIKO_BASE_URL: sim.apiUrl,
    CLINIKO_API_KEY: SANDBOX_API_KEY,
    CLINIKO_USER_AGENT: SANDBOX_USER_AGENT,
    CLINIKO_REQUESTS_PER_MINUTE: String(PER_MINUTE),
  })
  try {
    log(`Cliniko: ${RECORDS} records at ${PER_MINUTE} requests/minute (about a minute)`)
    await warmUpJob(gw, { upstream: 'cliniko', resource: WARM_UP_RESOURCE, params: {} })
    sim.state.reset()
    const started = performance.now()
    const job = await submitJob(gw, { upstream: 'cliniko', resource: RESOURCE, params: { per_page: PER_PAGE } })
    const { job: done, seenAt } = await waitForJob(gw, job.id, { pollMs: 100, timeoutMs: 300_000 })
    if (done.progress.records !== RECORDS) throw new Error(`the job stored ${done.progress.records} records, expected ${RECORDS}`)
    const took = (seenAt - started) / 1000
    const stats = sim.state.stats
    const served = Object.values(stats.pages).reduce((a, b) => a + b, 0)
    const requests = served + stats.throttled + stats.serverErrors
    const per1000 = requests === 0 ? 0 : 1000 * stats.rateLimited / requests
    const bound = RECORDS / PER_PAGE / PER_MINUTE * 60
    const data = {
      records: RECORDS,
      perPage: PER_PAGE,
      perMinute: PER_MINUTE,
      resource: RESOURCE,
      seconds: took,
      serverSeconds: serverSeconds(done),
      boundSeconds: bound,
      requests,
      pagesServed: served,
      rateLimited: stats.rateLimited,
      peakInWindow: stats.peakInWindow,
    }
    return [
      {
        id: '6a',
        what: `Cliniko ${RECORDS.toLocaleString('en-US')} records at ${PER_MINUTE} requests/minute`,
        gateway: seconds(took),
        baseline: `${seconds(bound)} rate-limit bound`,
        ratio: times(took / bound),
        target: '≤ 1.1× bound',
        pass: took / bound <= 1.1,
        data,
      },
      {
        id: '6b',
        what: 'Cliniko 429s from the rate limit',
        gateway: `${stats.rateLimited} in ${requests} requests`,
        baseline: `busiest minute: ${stats.peakInWindow} of ${PER_MINUTE} allowed`,
        ratio: `${per1000.toFixed(2)} per 1000`,
        target: '≤ 1 per 1000',
        pass: per1000 <= 1,
        data,
      },
    ]
  } finally {
    await gw.stop()
    await sim.close()
  }
}

/** Two replicas, one key: 300 requests at 200 a minute. */
export async function clinikoTwoReplicas (databaseUrl: string, log: (s: string) => void): Promise<Line[]> {
  // A key of its own: the budget of 6a's key is still counting its last minute in this database.
  const key = 'bench-two-replicas-au1'
  const resources = ['patients', 'individual_appointments'] as const
  const sim = await startClinikoSimulator({
    seed: 7,
    rateLimit: PER_MINUTE,
    apiKeys: [key],
    recordCount: { patients: 15_000, individual_appointments: 15_000 },
  })
  const env = {
    UPSTREAMS: 'cliniko',
    WORKER_CONCURRENCY: '1',
    CLINIKO_BASE_URL: sim.apiUrl,
    CLINIKO_API_KEY: key,
    CLINIKO_USER_AGENT: SANDBOX_USER_AGENT,
    CLINIKO_REQUESTS_PER_MINUTE: String(PER_MINUTE),
  }
  const gateways: GatewayProcess[] = []
  try {
    gateways.push(await startGateway(databaseUrl, env), await startGateway(databaseUrl, env))
    log('Cliniko: two gateway processes, one key, two jobs of 150 requests (about a minute)')
    const started = performance.now()
    const jobs = []
    for (const resource of resources) jobs.push(await submitJob(gateways[0]!, { upstream: 'cliniko', resource, params: { per_page: PER_PAGE } }))
    const done = await Promise.all(jobs.map(job => waitForJob(gateways[1]!, job.id, { pollMs: 100, timeoutMs: 300_000 })))
    const took = (Math.max(...done.map(d => d.seenAt)) - started) / 1000
    for (const { job } of done) if (job.status !== 'completed') throw new Error(`job ${job.id} ended ${job.status}`)
    const stats = sim.state.stats
    const served = Object.values(stats.pages).reduce((a, b) => a + b, 0)
    const bound = 60
    return [{
      id: '6c',
      what: 'Cliniko, two gateway processes on one key: 300 requests at 200/minute',
      gateway: seconds(took),
      baseline: `${seconds(bound)} rate-limit bound`,
      ratio: times(took / bound),
      target: '≤ 1.15× bound',
      pass: took / bound <= 1.15 && stats.rateLimited === 0,
      data: { seconds: took, boundSeconds: bound, pagesServed: served, rateLimited: stats.rateLimited, peakInWindow: stats.peakInWindow },
      note: `${stats.rateLimited} × 429; busiest minute ${stats.peakInWindow} of ${PER_MINUTE}; records ${done.map(d => d.job.progress.records).join(' + ')}`,
    }]
  } finally {
    for (const gw of gateways) await gw.stop()
    await sim.close()
  }
}
