/**
 * Where a gateway's memory goes during one DrChrono job: `npm run build && npx tsx bench/memory-probe.ts`.
 * Not a benchmark line (bench/run.ts has lines 5 and 5b for that) but the profile behind them: a gateway child
 * process as the bench runs it, its `/metrics` (V8 heap, external memory, RSS) sampled every 100 ms, and
 * `/proc/<pid>/smaps` summed by mapping when idle, right after the job and at each phase's largest RSS (V8's heap is anonymous memory, glibc's
 * main heap is `[heap]`, its thread arenas are anonymous 64 MB-aligned mappings: PROBE_ANON=1 lists the largest).
 *
 * Settings: PROBE_RECORDS (40000, whole pages of 1000); PROBE_ENV, JSON of extra gateway variables (e.g.
 * `{"MALLOC_ARENA_MAX":"1"}`); BENCH_GATEWAY_NODE_FLAGS (e.g. `--trace-gc`, whose output PROBE_OUT=1 prints).
 */
import { readFileSync } from 'node:fs'
import { SANDBOX_CREDENTIALS, startDrchronoSimulator } from '../src/upstreams/drchrono/simulator/index.js'
import { processCpu } from './cpu.js'
import { openDatabase } from './database.js'
import { UNMETERED_DRCHRONO, startGateway, type GatewayProcess } from './gateway-process.js'
import { submitJob, waitForJob } from './jobs.js'

const MB = 1024 * 1024
const METRICS = ['process_resident_memory_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes']

/** Resident MB by mapping name (anonymous mappings under "[anon]"), and the largest anonymous ones. */
function smaps (pid: number): { byName: Record<string, number>, anon: Array<{ mb: number, range: string }> } {
  const byName: Record<string, number> = {}
  const anon: Array<{ mb: number, range: string }> = []
  let name = '[anon]'
  let range = ''
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+-[0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head !== null) {
      range = head[1] as string
      name = (head[2] as string).trim() === '' ? '[anon]' : (head[2] as string).trim()
      continue
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss === null) continue
    const mb = Number(rss[1]) / 1024
    byName[name] = (byName[name] ?? 0) + mb
    if (name === '[anon]') anon.push({ mb, range })
  }
  return { byName, anon: anon.sort((a, b) => b.mb - a.mb) }
}

function printSmaps (label: string, pid: number): void {
  const { byName, anon } = smaps(pid)
  const lines = Object.entries(byName).filter(([, mb]) => mb >= 1).sort((a, b) => b[1] - a[1]).map(([k, mb]) => `  ${mb.toFixed(1)} MB ${k}`)
  console.log(`${label}: resident memory by mapping\n${lines.join('\n')}`)
  if (process.env.PROBE_ANON === '1') console.log(`  largest anonymous: ${anon.slice(0, 12).map(a => `${a.mb.toFixed(1)} MB ${a.range}`).join(', ')}`)
}

async function sampler (gw: GatewayProcess): Promise<{ phase (name: string): Promise<void>, stop (): Promise<Record<string, number>> }> {
  const peaks: Record<string, number> = {}
  let phase = 'idle'
  const atPeak: Record<string, Record<string, number>> = {}
  const sample = async (): Promise<void> => {
    const text = await (await gw.request('/metrics')).text()
    for (const metric of METRICS) {
      const m = new RegExp(`^${metric} (\\S+)`, 'm').exec(text)
      if (m !== null) peaks[`${phase} ${metric}`] = Math.max(peaks[`${phase} ${metric}`] ?? 0, Number(m[1]) / MB)
    }
    peaks[`${phase} VmHWM`] = gw.memory().hwm / MB
    // Where the memory is at the largest RSS seen in this phase: smaps summed by mapping.
    const rss = gw.memory().rss / MB
    if (rss > (peaks[`${phase} rss`] ?? 0)) {
      peaks[`${phase} rss`] = rss
      atPeak[phase] = smaps(gw.pid).byName
    }
  }
  await sample()
  const timer = setInterval(() => { sample().catch(() => {}) }, 100)
  return {
    async phase (name: string) { await sample(); phase = name },
    async stop () {
      await sample()
      clearInterval(timer)
      for (const [name, byName] of Object.entries(atPeak)) {
        const top = Object.entries(byName).filter(([, mb]) => mb >= 1).sort((a, b) => b[1] - a[1])
        console.log(`${name}, at its largest RSS: ${top.map(([k, mb]) => `${mb.toFixed(1)} MB ${k}`).join(', ')}`)
      }
      return peaks
    },
  }
}

const records = Number(process.env.PROBE_RECORDS ?? 40_000)
if (!Number.isInteger(records) || records < 1000 || records % 1000 !== 0) throw new Error('PROBE_RECORDS must be a multiple of 1000')
const db = await openDatabase()
const sim = await startDrchronoSimulator({ seed: 7, inProgressPolls: 0, generationMs: 0, recordCount: { line_items: records } })
let gw: GatewayProcess | undefined
try {
  gw = await startGateway(db.url, {
    UPSTREAMS: 'drchrono',
    DRCHRONO_BASE_URL: sim.url,
    DRCHRONO_ACCESS_TOKEN: SANDBOX_CREDENTIALS.accessToken,
    DRCHRONO_PAGE_CONCURRENCY: '10',
    DRCHRONO_POLL_INTERVAL_MS: '10',
    ...UNMETERED_DRCHRONO,
    ...JSON.parse(process.env.PROBE_ENV ?? '{}') as Record<string, string>,
  })
  const s = await sampler(gw)
  printSmaps('idle', gw.pid)
  await s.phase('job')
  const cpuBefore = processCpu(gw.pid)
  const job = await submitJob(gw, { upstream: 'drchrono', resource: 'line_items', params: { page_size: 1000 } })
  await waitForJob(gw, job.id, { pollMs: 100, timeoutMs: 600_000 })
  const cpuJob = processCpu(gw.pid) - cpuBefore
  await s.phase('ndjson read')
  printSmaps('after the job', gw.pid)
  const res = await gw.request(`/jobs/${job.id}/results`, { headers: { accept: 'application/x-ndjson' } })
  let bytes = 0
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) bytes += chunk.length
  const cpuRead = processCpu(gw.pid) - cpuBefore - cpuJob
  const peaks = await s.stop()
  console.log(`${records} records stored and read back as NDJSON (${(bytes / MB).toFixed(1)} MB)`)
  console.log(`gateway CPU per record: job ${(cpuJob / records * 1e6).toFixed(2)} µs, read ${(cpuRead / records * 1e6).toFixed(2)} µs`)
  console.log('peaks (MB):')
  for (const [k, mb] of Object.entries(peaks)) console.log(`  ${k}: ${mb.toFixed(1)}`)
  if (process.env.PROBE_OUT === '1') console.log(gw.output())
} finally {
  await gw?.stop()
  await sim.close()
  await db.close()
}
