/**
 * Target 1: a 40-page DrChrono list (1000 records a page, 1.0 s to generate each) read by the gateway, against the
 * vendor's sequential loop on the same simulator, and against the ideal for the gateway's page concurrency. Lines
 * 1d and 1e read it once more at the gateway's default settings (DRCHRONO_PAGE_CONCURRENCY 4, poll 500 ms): what
 * it costs in DrChrono requests (500 an hour per application), and how close to the ideal it stays for that.
 */
import { SANDBOX_CREDENTIALS, startDrchronoSimulator } from '../../src/upstreams/drchrono/simulator/index.js'
import { drchronoVendorLoop } from '../drchrono-vendor-loop.js'
import { UNMETERED_DRCHRONO, startGateway } from '../gateway-process.js'
import { serverSeconds, submitJob, waitForJob, warmUpJob } from '../jobs.js'
import { seconds, times, type Line } from '../report.js'

const PAGES = 40
const PAGE_SIZE = 1000
const GENERATION_MS = 1000
const RESOURCE = 'line_items'
/** A one-page list for the warm-up job. */
const WARM_UP_RESOURCE = 'patients'
/** DRCHRONO_PAGE_CONCURRENCY's default. */
const DEFAULT_CONCURRENCY = 4

export interface DrchronoSettings { concurrency: number, pollMs: number }

const SIMULATOR = {
  seed: 7, inProgressPolls: 0, generationMs: GENERATION_MS, recordCount: { [RESOURCE]: PAGES * PAGE_SIZE, [WARM_UP_RESOURCE]: 10 },
}

async function gatewayJob (databaseUrl: string, simUrl: string, env: Record<string, string>): Promise<{
  seconds: number,
  serverSeconds: number | null,
  records: number,
}> {
  const gw = await startGateway(databaseUrl, {
    UPSTREAMS: 'drchrono', DRCHRONO_BASE_URL: simUrl, DRCHRONO_ACCESS_TOKEN: SANDBOX_CREDENTIALS.accessToken, ...env,
  })
  try {
    await warmUpJob(gw, { upstream: 'drchrono', resource: WARM_UP_RESOURCE, params: {} })
    const started = performance.now()
    const job = await submitJob(gw, { upstream: 'drchrono', resource: RESOURCE, params: { page_size: PAGE_SIZE } })
    const { job: done, seenAt } = await waitForJob(gw, job.id, { pollMs: 25, timeoutMs: 300_000 })
    if (done.progress.records !== PAGES * PAGE_SIZE) throw new Error(`the job stored ${done.progress.records} records, expected ${PAGES * PAGE_SIZE}`)
    return { seconds: (seenAt - started) / 1000, serverSeconds: serverSeconds(done), records: done.progress.records }
  } finally {
    await gw.stop()
  }
}

export async function drchronoEndToEnd (databaseUrl: string, settings: DrchronoSettings, log: (s: string) => void): Promise<Line[]> {
  const sim = await startDrchronoSimulator(SIMULATOR)
  try {
    log(`DrChrono: vendor loop, ${PAGES} pages one after another (about ${PAGES * GENERATION_MS / 1000} s)`)
    const vendor = await drchronoVendorLoop({ baseUrl: sim.url, token: SANDBOX_CREDENTIALS.accessToken, resource: RESOURCE, pageSize: PAGE_SIZE, pollMs: 1000 })
    if (vendor.records !== PAGES * PAGE_SIZE) throw new Error(`the vendor loop read ${vendor.records} records, expected ${PAGES * PAGE_SIZE}`)

    log(`DrChrono: gateway job, DRCHRONO_PAGE_CONCURRENCY=${settings.concurrency}, DRCHRONO_POLL_INTERVAL_MS=${settings.pollMs}`)
    // Lines 1a-1c measure how well the pages overlap at a concurrency of 10, which DrChrono's ceiling of 8 requests
    // a second would not allow (the simulator has none); 1d and 1e run at the defaults, ceiling included.
    const env = { DRCHRONO_PAGE_CONCURRENCY: String(settings.concurrency), DRCHRONO_POLL_INTERVAL_MS: String(settings.pollMs), ...UNMETERED_DRCHRONO }
    sim.state.reset()
    const gw = await gatewayJob(databaseUrl, sim.url, env)
    const posts = sim.state.totalPosts(RESOURCE)

    log('DrChrono: gateway job with the default DRCHRONO_POLL_INTERVAL_MS (500)')
    const byDefault = await gatewayJob(databaseUrl, sim.url, { DRCHRONO_PAGE_CONCURRENCY: String(settings.concurrency), ...UNMETERED_DRCHRONO })

    log(`DrChrono: gateway job at the default settings (DRCHRONO_PAGE_CONCURRENCY=${DEFAULT_CONCURRENCY}, DRCHRONO_POLL_INTERVAL_MS=500)`)
    // A simulator of its own, so a budget key of its own: the jobs above spent from theirs this hour.
    const own = await startDrchronoSimulator(SIMULATOR)
    const defaults = await gatewayJob(databaseUrl, own.url, {}).finally(() => own.close())
    const requests = own.state.totalRequests(RESOURCE)
    const pastEndRequests = own.state.pastEndRequests(RESOURCE)
    const perPage = requests / PAGES
    const defaultIdeal = Math.ceil(PAGES / DEFAULT_CONCURRENCY) * GENERATION_MS / 1000

    const ideal = Math.ceil(PAGES / settings.concurrency) * GENERATION_MS / 1000
    const speedup = vendor.seconds / gw.seconds
    const shape = `${PAGES} pages × ${PAGE_SIZE} records, ${GENERATION_MS / 1000} s generation`
    const data = { pages: PAGES, pageSize: PAGE_SIZE, generationMs: GENERATION_MS, resource: RESOURCE, ...settings }
    return [
      {
        id: '1a',
        what: `DrChrono job, POST → completed (${shape})`,
        gateway: seconds(gw.seconds),
        baseline: `${seconds(vendor.seconds)} vendor loop`,
        ratio: `${times(speedup)} faster`,
        target: '≥ 8× faster',
        pass: speedup >= 8,
        data: {
          ...data,
          gatewaySeconds: gw.seconds,
          gatewayServerSeconds: gw.serverSeconds,
          vendorSeconds: vendor.seconds,
          vendorPolls: vendor.polls,
          upstreamPosts: posts,
          speedup,
        },
      },
      {
        id: '1b',
        what: `DrChrono job vs ideal ceil(${PAGES}/${settings.concurrency}) × 1.0 s (concurrency ${settings.concurrency}, poll ${settings.pollMs} ms)`,
        gateway: seconds(gw.seconds),
        baseline: `${seconds(ideal)} ideal`,
        ratio: times(gw.seconds / ideal),
        target: '≤ 1.3× ideal',
        pass: gw.seconds / ideal <= 1.3,
        data: { ...data, gatewaySeconds: gw.seconds, idealSeconds: ideal, ratio: gw.seconds / ideal },
      },
      {
        id: '1c',
        what: 'Same job with the default poll interval (500 ms, paced by earlier pages)',
        gateway: seconds(byDefault.seconds),
        baseline: `${seconds(ideal)} ideal`,
        ratio: times(byDefault.seconds / ideal),
        target: '-',
        pass: null,
        data: { ...data, pollMs: 500, gatewaySeconds: byDefault.seconds, idealSeconds: ideal, speedupOverVendor: vendor.seconds / byDefault.seconds },
        note: `${times(vendor.seconds / byDefault.seconds)} faster than the vendor loop`,
      },
      {
        id: '1d',
        what: `DrChrono requests per page at the default settings (POST + polls; ${shape})`,
        gateway: `${perPage.toFixed(2)} req/page`,
        baseline: '2 (one POST, one poll)',
        ratio: times(perPage / 2),
        target: '≤ 2.5 per page',
        pass: perPage <= 2.5,
        data: { ...data, concurrency: DEFAULT_CONCURRENCY, pollMs: 500, requests, requestsPerPage: perPage, pastEndRequests },
        note: `${requests} requests for ${PAGES} pages; the vendor loop polled ${vendor.polls} times (${((vendor.polls + PAGES) / PAGES).toFixed(2)} requests per page at one poll a second)`,
      },
      {
        id: '1e',
        what: `DrChrono job vs ideal ceil(${PAGES}/${DEFAULT_CONCURRENCY}) × 1.0 s at the default settings (concurrency ${DEFAULT_CONCURRENCY}, poll 500 ms)`,
        gateway: seconds(defaults.seconds),
        baseline: `${seconds(defaultIdeal)} ideal`,
        ratio: times(defaults.seconds / defaultIdeal),
        target: '≤ 1.3× ideal',
        pass: defaults.seconds / defaultIdeal <= 1.3,
        data: {
          ...data,
          concurrency: DEFAULT_CONCURRENCY,
          pollMs: 500,
          gatewaySeconds: defaults.seconds,
          gatewayServerSeconds: defaults.serverSeconds,
          idealSeconds: defaultIdeal,
          ratio: defaults.seconds / defaultIdeal,
        },
      },
    ]
  } finally {
    await sim.close()
  }
}
