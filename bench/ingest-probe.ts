/**
 * Where PostgreSQL's work goes during one DrChrono ingest: `npm run build && npx tsx bench/ingest-probe.ts`.
 * Not a benchmark line (line 2a is) but the profile behind it: a gateway child process as the bench runs it, and for
 * the job's run the CPU of each PostgreSQL process (its backends by what they are), the gateway's and this
 * process's (the simulator), the transactions per page, and the rows written and the scans per page of each table
 * (`pg_stat_user_tables`, read 11 s after the job, once every backend has reported). It found that a gateway's own
 * budget looks met each other's advisory lock, about three refused looks (each a transaction) for every request sent
 * (db/budget-store.ts says what was done).
 *
 * Settings: PROBE_RECORDS (200000, whole pages of 1000); PROBE_ENV, JSON of extra gateway variables;
 * PROBE_READS, JSON of a list of gateway variable sets: each then reads the job as NDJSON four times on a fresh
 * gateway of those variables, and prints each read's time and the gateway's CPU per record (e.g.
 * `[{}, {"UV_THREADPOOL_SIZE":"2"}]`; with BENCH_CPU_PROF set, each of them writes a CPU profile).
 */
import { readdirSync, readFileSync } from 'node:fs'
import pg from 'pg'
import { SANDBOX_CREDENTIALS, startDrchronoSimulator } from '../src/upstreams/drchrono/simulator/index.js'
import { parentPid, postmasterPid, processCpu, threadCpu } from './cpu.js'
import { openDatabase } from './database.js'
import { UNMETERED_DRCHRONO, startGateway } from './gateway-process.js'
import { submitJob, waitForJob } from './jobs.js'

/** CPU seconds of the postmaster and of each of its children, by what each is (backends by their state). */
function postgresProcesses (postmaster: number): Map<number, { name: string, cpu: number }> {
  const out = new Map<number, { name: string, cpu: number }>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    if (pid !== postmaster && parentPid(pid) !== postmaster) continue
    try {
      const name = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim().replace(/\S+\(\d+\)/, '<client>')
      out.set(pid, { name, cpu: processCpu(pid) })
    } catch {
      // gone meanwhile
    }
  }
  return out
}

async function tableStats (url: string): Promise<{ tables: Map<string, { writes: number, scans: number }>, transactions: number }> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ relname: string, writes: string, scans: string }>(`SELECT relname,
      n_tup_ins + n_tup_upd + n_tup_del AS writes, seq_scan + coalesce(idx_scan, 0) AS scans FROM pg_stat_user_tables`)
    const { rows: [db] } = await client.query<{ x: string }>('SELECT xact_commit + xact_rollback AS x FROM pg_stat_database WHERE datname = current_database()')
    return { tables: new Map(rows.map(r => [r.relname, { writes: Number(r.writes), scans: Number(r.scans) }])), transactions: Number(db?.x) }
  } finally {
    await client.end()
  }
}

const records = Number(process.env.PROBE_RECORDS ?? 200_000)
if (!Number.isInteger(records) || records < 1000 || records % 1000 !== 0) throw new Error('PROBE_RECORDS must be a multiple of 1000')
const pages = records / 1000
const db = await openDatabase()
const postmaster = await postmasterPid(db.url)
if (postmaster === null) throw new Error('the probe reads PostgreSQL\'s processes from /proc: run it against a server on this machine')
const sim = await startDrchronoSimulator({ seed: 7, inProgressPolls: 0, generationMs: 0, recordCount: { line_items: records } })
const simulator = { DRCHRONO_BASE_URL: sim.url, DRCHRONO_ACCESS_TOKEN: SANDBOX_CREDENTIALS.accessToken }
const gw = await startGateway(db.url, {
  UPSTREAMS: 'drchrono',
  ...simulator,
  DRCHRONO_PAGE_CONCURRENCY: '10',
  DRCHRONO_POLL_INTERVAL_MS: '10',
  ...UNMETERED_DRCHRONO,
  ...JSON.parse(process.env.PROBE_ENV ?? '{}') as Record<string, string>,
})
try {
  // A backend reports its statistics to pg_stat_* at most once a second while busy, and within 10 s once idle.
  const settle = () => new Promise(resolve => setTimeout(resolve, 11_000))
  await settle()
  const stats0 = await tableStats(db.url)
  const pg0 = postgresProcesses(postmaster)
  const gateway0 = processCpu(gw.pid)
  const me0 = process.cpuUsage()
  const started = performance.now()
  const job = await submitJob(gw, { upstream: 'drchrono', resource: 'line_items', params: { page_size: 1000 } })
  await waitForJob(gw, job.id, { pollMs: 250, timeoutMs: 600_000 })
  const seconds = (performance.now() - started) / 1000
  const pg1 = postgresProcesses(postmaster)
  const gatewayCpu = processCpu(gw.pid) - gateway0
  const me = process.cpuUsage(me0)
  await settle()
  const stats1 = await tableStats(db.url)

  const each = (cpu: number) => `${(cpu / records * 1e6).toFixed(2)} µs/record`
  console.log(`${records} records in ${seconds.toFixed(1)} s (${Math.round(records / seconds)} records/s)`)
  console.log(`CPU: gateway ${each(gatewayCpu)}, this process (simulator) ${each((me.user + me.system) / 1e6)}; PostgreSQL by process:`)
  const byName = new Map<string, number>()
  for (const [pid, p] of pg1) byName.set(p.name, (byName.get(p.name) ?? 0) + p.cpu - (pg0.get(pid)?.cpu ?? 0))
  for (const [name, cpu] of [...byName].sort((a, b) => b[1] - a[1])) if (cpu > 0) console.log(`  ${each(cpu)}  ${name}`)
  const gone = [...pg0.keys()].filter(pid => !pg1.has(pid)).length
  if (gone > 0) console.log(`  (${gone} PostgreSQL processes ended meanwhile: their CPU is not counted)`)
  console.log(`transactions per page: ${((stats1.transactions - stats0.transactions) / pages).toFixed(1)}; per table, per page:`)
  for (const [table, now] of stats1.tables) {
    const before = stats0.tables.get(table) ?? { writes: 0, scans: 0 }
    const writes = (now.writes - before.writes) / pages
    const scans = (now.scans - before.scans) / pages
    if (writes + scans >= 0.05) console.log(`  ${table}: ${writes.toFixed(2)} rows written, ${scans.toFixed(2)} scans`)
  }

  for (const variables of JSON.parse(process.env.PROBE_READS ?? '[]') as Array<Record<string, string>>) {
    // The same client: the job is the bench client's.
    const reader = await startGateway(db.url, { GATEWAY_API_KEYS: `bench:${gw.key}`, UPSTREAMS: 'drchrono', ...simulator, ...variables })
    try {
      const reads: string[] = []
      for (let round = 0; round < 4; round++) {
        const cpu0 = processCpu(reader.pid)
        const main0 = threadCpu(reader.pid, reader.pid)
        const t0 = performance.now()
        const res = await fetch(`${reader.url}/jobs/${job.id}/results`, { headers: { authorization: `Bearer ${gw.key}`, accept: 'application/x-ndjson' } })
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) void chunk
        reads.push(`${((performance.now() - t0) / 1000).toFixed(3)} s, ${each(processCpu(reader.pid) - cpu0)} (main thread ${each(threadCpu(reader.pid, reader.pid) - main0)})`)
      }
      console.log(`NDJSON reads with ${JSON.stringify(variables)}: ${reads.join('; ')}`)
    } finally {
      await reader.stop()
    }
  }
} finally {
  await gw.stop()
  await sim.close()
  await db.close()
}
