/**
 * `npm run soak`: months of history, accelerated. Two gateway replicas (`node dist/server.js`) share one database
 * and serve every upstream from their simulators; a steady stream of jobs runs across all upstreams with
 * RESULT_TTL_SECONDS=20 and job rows kept SOAK_RETENTION_SECONDS (JOB_RETENTION_SECONDS, the test-only knob).
 * Every minute it prints each table's rows and bytes (pg_total_relation_size), each replica's RSS and the sweeps'
 * durations; it passes only if all of them stay flat after the warm-up and no job is lost.
 *
 * Not part of `npm test`: it runs SOAK_MINUTES (default 20) by design. Settings: SOAK_MINUTES, SOAK_JOBS_PER_MINUTE
 * (default 40), SOAK_RETENTION_SECONDS (default 120), DATABASE_URL (else an embedded server).
 */
import { writeFile } from 'node:fs/promises'
import { jobRequestExample } from '../src/api/job-request.js'
import { withConnection } from '../src/db/sql/sql.js'
import { registry } from '../src/upstreams/registry.js'
import { openDatabase } from './database.js'
import { startGateway, type GatewayProcess } from './gateway-process.js'
import { flatness, type Series } from './soak-flatness.js'

const minutes = Number(process.env.SOAK_MINUTES ?? 20)
const jobsPerMinute = Number(process.env.SOAK_JOBS_PER_MINUTE ?? 40)
const retentionSeconds = Number(process.env.SOAK_RETENTION_SECONDS ?? 120)
const ttlSeconds = 20
const DRCHRONO_PER_HOUR = 5000
/**
 * Budget grants are kept for their budget's longest window, DrChrono's clock hour: within one hour they grow by
 * design, bounded by what the budgets allow per window. They are judged against that bound, not for flatness:
 * each replica's sandbox DrChrono has its own credentials (one budget each), plus Cliniko's minute.
 */
const GRANTS_BOUND = 2 * DRCHRONO_PER_HOUR + 2 * 200
/** Minutes before the tables can be in their steady state: a job's whole life (run, TTL, retention) and a sweep. */
const warmupMinutes = Math.ceil((retentionSeconds + ttlSeconds + 60) / 60) + 1
/** Tables judged for flatness: all but the budget grants (see GRANTS_BOUND). */
const FLAT_TABLES = ['jobs', 'result_pages', 'idempotency_keys', 'webhook_deliveries', 'upstream_budget_pauses', 'upstream_budget_waiters', 'upstream_credentials'] as const
const TABLES = ['jobs', 'result_pages', 'idempotency_keys', 'webhook_deliveries', 'upstream_budget_grants', 'upstream_budget_pauses',
  'upstream_budget_waiters', 'upstream_credentials'] as const

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Every resource of every upstream, as its documented example job: the mix the soak cycles through. */
const bodies = registry.upstreams.flatMap(u => Object.keys(u.resources).map(resource => jobRequestExample(u, resource)))

interface Tracked { id: string, upstream: string, submittedAt: number, status: string, records: number | null, read: boolean }

async function tableSizes (url: string): Promise<Record<string, { rows: number, bytes: number }>> {
  return withConnection(url, async client => {
    const sizes: Record<string, { rows: number, bytes: number }> = {}
    for (const table of TABLES) {
      const { rows } = await client.query<{ rows: string, bytes: string }>(
        `SELECT (SELECT count(*) FROM ${table}) AS rows, pg_total_relation_size('${table}') AS bytes`)
      sizes[table] = { rows: Number(rows[0]?.rows), bytes: Number(rows[0]?.bytes) }
    }
    return sizes
  })
}

/** Sum and count of one histogram in a replica's /metrics text. */
async function sweepTotals (gw: GatewayProcess): Promise<{ sum: number, count: number }> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const value = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? 0)
  return { sum: value('bulk_gateway_sweep_duration_seconds_sum'), count: value('bulk_gateway_sweep_duration_seconds_count') }
}

/** Follows one job to its end and reads its results once (NDJSON), checking the count against the job's. */
async function follow (gw: GatewayProcess, job: Tracked, lost: string[]): Promise<void> {
  const deadline = job.submittedAt + 5 * 60_000
  for (;;) {
    const view = await (await gw.request(`/jobs/${job.id}`)).json() as { status: string, progress: { records: number }, error: { code: string } | null }
    job.status = view.status
    if (!['queued', 'running'].includes(view.status)) {
      if (view.status === 'completed') {
        const res = await gw.request(`/jobs/${job.id}/results`, { headers: { accept: 'application/x-ndjson' } })
        if (res.status === 200) {
          const lines = (await res.text()).split('\n').filter(Boolean).length
          job.records = lines
          job.read = true
          if (lines !== view.progress.records) lost.push(`${job.id} (${job.upstream}): ${lines} records read, the job says ${view.progress.records}`)
        }
      } else if (view.status !== 'expired') {
        lost.push(`${job.id} (${job.upstream}): ended ${view.status} ${view.error?.code ?? ''}`)
      }
      return
    }
    if (Date.now() > deadline) {
      lost.push(`${job.id} (${job.upstream}): still ${view.status} after 5 minutes`)
      return
    }
    await sleep(1000)
  }
}

const db = await openDatabase()
const env = {
  NODE_ENV: 'development',
  SANDBOX: 'true',
  RESULT_TTL_SECONDS: String(ttlSeconds),
  JOB_RETENTION_SECONDS: String(retentionSeconds),
  SWEEP_INTERVAL_SECONDS: '10',
  // Many small jobs a minute from one client: the product's per-client cap is not what is soaked here.
  MAX_ACTIVE_JOBS_PER_CLIENT: '1000',
  // DrChrono's 500 requests an hour would stall the stream within the run (they are shared, not soaked here).
  DRCHRONO_REQUESTS_PER_HOUR: String(DRCHRONO_PER_HOUR),
}
const replicas = [await startGateway(db.url, env), await startGateway(db.url, env)]
console.log(`soak: ${minutes} min, ${jobsPerMinute} jobs/min over ${bodies.length} kinds (${registry.upstreams.map(u => u.name).join(', ')}), ` +
  `TTL ${ttlSeconds} s, retention ${retentionSeconds} s, warm-up ${warmupMinutes} min, 2 replicas, database ${db.source}`)

const jobs: Tracked[] = []
const lost: string[] = []
const following: Array<Promise<void>> = []
const samples: Array<{ minute: number, tables: Awaited<ReturnType<typeof tableSizes>>, rss: number[], sweepMs: number[] }> = []
let previousSweeps = await Promise.all(replicas.map(sweepTotals))
const started = Date.now()
let submitted = 0
let refused = 0

const submitter = (async () => {
  const gap = 60_000 / jobsPerMinute
  while (Date.now() - started < minutes * 60_000) {
    const body = bodies[submitted % bodies.length]
    const gw = replicas[submitted % replicas.length] as GatewayProcess
    submitted++
    const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify(body), headers: { 'idempotency-key': `soak-${submitted}` } })
    if (res.status === 202 || res.status === 200) {
      const view = await res.json() as { id: string, upstream: string }
      // An identical read job still in flight is returned again (200): follow each job once.
      if (!jobs.some(j => j.id === view.id)) {
        const job: Tracked = { id: view.id, upstream: view.upstream, submittedAt: Date.now(), status: 'queued', records: null, read: false }
        jobs.push(job)
        following.push(follow(replicas[jobs.length % replicas.length] as GatewayProcess, job, lost))
      }
    } else {
      refused++
      lost.push(`POST /jobs (${String((body as { upstream: string }).upstream)}) answered ${res.status}: ${(await res.text()).slice(0, 200)}`)
    }
    await sleep(gap)
  }
})()

const header = ['min', ...TABLES.flatMap(t => [`${t} rows`, `${t} MB`]), 'RSS A MB', 'RSS B MB', 'sweep ms (mean A/B)']
console.log(header.join('\t'))
for (let minute = 1; minute <= minutes; minute++) {
  await sleep(started + minute * 60_000 - Date.now())
  const tables = await tableSizes(db.url)
  const rss = replicas.map(r => r.memory().rss)
  const sweeps = await Promise.all(replicas.map(sweepTotals))
  const sweepMs = sweeps.map((s, i) => {
    const before = previousSweeps[i] as { sum: number, count: number }
    const n = s.count - before.count
    return n > 0 ? ((s.sum - before.sum) / n) * 1000 : 0
  })
  previousSweeps = sweeps
  samples.push({ minute, tables, rss, sweepMs })
  const mb = (b: number): string => (b / 1024 / 1024).toFixed(2)
  console.log([minute, ...TABLES.flatMap(t => [tables[t]?.rows ?? 0, mb(tables[t]?.bytes ?? 0)]), ...rss.map(mb), sweepMs.map(m => m.toFixed(1)).join('/')].join('\t'))
}
await submitter
await Promise.all(following)
for (const r of replicas) await r.stop()

// Flat: see soak-flatness.ts for the rule and its tolerances.
const after = samples.filter(s => s.minute > warmupMinutes)
const series: Series[] = [
  ...FLAT_TABLES.map(t => ({ name: `${t} rows`, values: after.map(s => s.tables[t]?.rows ?? 0), slack: 50 })),
  ...FLAT_TABLES.map(t => ({ name: `${t} bytes`, values: after.map(s => s.tables[t]?.bytes ?? 0), slack: 2 * 1024 * 1024 })),
  ...replicas.map((_, i) => ({ name: `RSS ${'AB'[i]}`, values: after.map(s => s.rss[i] ?? 0), slack: 40 * 1024 * 1024 })),
  ...replicas.map((_, i) => ({ name: `sweep ms ${'AB'[i]}`, values: after.map(s => s.sweepMs[i] ?? 0), slack: 50 })),
]
const grantsPeak = Math.max(...samples.map(s => s.tables.upstream_budget_grants?.rows ?? 0))
const verdicts = [...series.map(flatness), {
  name: 'upstream_budget_grants rows',
  flat: grantsPeak <= GRANTS_BOUND,
  detail: `peak ${grantsPeak}, bound ${GRANTS_BOUND} (what the budgets allow in their longest window; they reset with it)`,
}]
const growing = verdicts.filter(v => !v.flat)
const completed = jobs.filter(j => j.status === 'completed').length
const summary = {
  minutes,
  jobsPerMinute,
  ttlSeconds,
  retentionSeconds,
  warmupMinutes,
  submitted,
  jobs: jobs.length,
  completed,
  readWhole: jobs.filter(j => j.read).length,
  refused,
  lost,
  growing,
  samples,
}
await writeFile(new URL('./soak-results.json', import.meta.url), JSON.stringify(summary, null, 2) + '\n')
await db.close()
console.log(`jobs: ${jobs.length} distinct (${submitted} POSTs), ${completed} completed, ${summary.readWhole} read whole, lost ${lost.length}`)
for (const v of verdicts) console.log(`${v.flat ? 'flat   ' : 'GROWING'} ${v.name}: ${v.detail}`)
for (const l of lost.slice(0, 20)) console.log(`lost: ${l}`)
const pass = lost.length === 0 && growing.length === 0 && after.length >= 3
console.log(pass ? 'SOAK PASS' : `SOAK FAIL${after.length < 3 ? ' (too few minutes after the warm-up to judge)' : ''}`)
process.exit(pass ? 0 : 1)
