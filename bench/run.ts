/**
 * `npm run bench`: every performance target of the gateway, measured against a baseline taken in the same run,
 * on loopback simulators and a real PostgreSQL (embedded, or a scratch database on DATABASE_URL's server).
 * Prints the table and writes bench/results.json. The README's "Performance" section says what each line means.
 *
 * Settings (environment): BENCH_DRCHRONO_CONCURRENCY (10), BENCH_RECORDS (1000000), BENCH_LOAD_SECONDS (8),
 * BENCH_SWEEP_HISTORY (1000000: line 8's historic jobs and live records, smaller for a quick check),
 * BENCH_ONLY (comma-separated: drchrono, cliniko, bulk, readers, sweep, post, fhir; or api: target 4 alone, on a small job, not part of the default).
 * fhir needs the shared peers/ folder (test/helpers/smart-peer-process.ts says where); without it line 10 reads "not measured".
 */
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { openDatabase } from './database.js'
import { run } from './copy.js'
import { failedLine, table, verdict, writeResults, type Line } from './report.js'
import { apiOverheadAlone } from './scenarios/api-overhead.js'
import { bulkJob } from './scenarios/bulk-job.js'
import { clinikoTwoReplicas, clinikoUnderRateLimit } from './scenarios/cliniko-rate-limit.js'
import { drchronoEndToEnd } from './scenarios/drchrono-end-to-end.js'
import { fhirExport } from './scenarios/fhir-export.js'
import { maxPost } from './scenarios/max-post.js'
import { slowReaders } from './scenarios/slow-readers.js'
import { sweepAtScale } from './scenarios/sweep.js'

function integer (name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max}`)
  return n
}

const settings = {
  drchronoConcurrency: integer('BENCH_DRCHRONO_CONCURRENCY', 10, 1, 16),
  records: integer('BENCH_RECORDS', 1_000_000, 1000, 1_000_000),
  loadSeconds: integer('BENCH_LOAD_SECONDS', 8, 1, 120),
  sweepHistory: integer('BENCH_SWEEP_HISTORY', 1_000_000, 1000, 1_000_000),
}
const only = new Set((process.env.BENCH_ONLY ?? 'drchrono,cliniko,bulk,readers,sweep,post,fhir').split(',').map(s => s.trim()).filter(Boolean))
const started = performance.now()
const log = (message: string): void => {
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`)
}

const db = await openDatabase()
const lines: Line[] = []
const meta: Record<string, unknown> = {
  startedAt: new Date().toISOString(),
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadAverageAtStart: loadavg() },
  database: db.source,
  settings,
}
try {
  log(`PostgreSQL: ${db.source === 'embedded' ? 'embedded (temporary cluster)' : 'scratch database on DATABASE_URL'}`)
  meta.postgres = String((await run(db.url, 'SHOW server_version')).rows[0]?.server_version)
  const scenarios: Array<[string, () => Promise<Line[]>, Array<[string, string, string]>]> = [
    ['drchrono', () => drchronoEndToEnd(db.url, { concurrency: settings.drchronoConcurrency, pollMs: 1000 }, log),
      [['1a', 'DrChrono job vs vendor loop', '≥ 8× faster'], ['1b', 'DrChrono job vs ideal', '≤ 1.3× ideal'],
        ['1d', 'DrChrono requests per page', '≤ 2.5 per page'], ['1e', 'DrChrono job vs ideal at defaults', '≤ 1.3× ideal']]],
    ['cliniko', async () => [...await clinikoUnderRateLimit(db.url, log), ...await clinikoTwoReplicas(db.url, log)],
      [['6a', 'Cliniko under its rate limit', '≤ 1.1× bound'], ['6b', 'Cliniko 429s', '≤ 1 per 1000'], ['6c', 'Cliniko, two replicas on one key', '≤ 1.15× bound']]],
    ['bulk', () => bulkJob(db.url, { records: settings.records, concurrency: settings.drchronoConcurrency, loadSeconds: settings.loadSeconds }, log),
      [['2', 'Ingest', '≥ 1.0× per-row COPY, ≥ 80,000 rec/s'], ['3', 'Read', '≥ 90% of COPY, p99 < 25 ms'], ['4', 'API overhead', '≥ 30%'],
        ['5', 'Memory', '< 160 MB; 5b < 150 MB'], ['11', 'Disk per record', '≤ 50% of per-row'], ['12', 'Expiry of the job', '< 100 ms']]],
    ['readers', () => slowReaders(db.url, log), [['7', 'Memory, slow NDJSON readers', '≤ 6 × 4 × (batch cap + record) + 32 MB']]],
    ['sweep', () => sweepAtScale(db.url, { historicJobs: settings.sweepHistory, liveRows: settings.sweepHistory }, log),
      [['8', 'Sweep with 1M historic jobs, 1M live records', '≤ 1.5× empty history']]],
    ['post', () => maxPost(db.url, log), [['9a', 'GET /health/live during the max POST /jobs', 'p99 ≤ 10× idle, loop delay ≤ 200 ms'], ['9b', 'max POST /jobs (100,000 Clinia operations)', '202']]],
    ['fhir', () => fhirExport(db.url, log), [['10', 'FHIR system export of the SMART server (m=70)', '≤ 1.2× plain client; peak RSS < 250 MB']]],
    // Line 4 alone, for work on it (bulk measures it too, on its million-record job).
    ['api', () => apiOverheadAlone(db.url, { loadSeconds: settings.loadSeconds }, log), [['4', 'API overhead', '≥ 30%']]],
  ]
  for (const [name, scenario, targets] of scenarios) {
    if (!only.has(name)) continue
    try {
      lines.push(...await scenario())
    } catch (err) {
      log(`${name} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
      for (const [id, what, target] of targets) lines.push(failedLine(id, what, target, err))
    }
  }
} finally {
  await db.close()
}

const wall = (performance.now() - started) / 1000
const resultsPath = fileURLToPath(new URL('results.json', import.meta.url))
await writeResults(resultsPath, { ...meta, finishedAt: new Date().toISOString(), wallSeconds: wall, loadAverageAtEnd: loadavg() }, lines)
process.stdout.write(`\n${table(lines)}\n\n`)
for (const l of lines) if (l.note !== undefined) process.stdout.write(`${l.id}: ${l.note}\n`)
const count = (v: string): number => lines.filter(l => verdict(l) === v).length
process.stdout.write(`\nPASS ${count('PASS')}, MISS ${count('MISS')}, info ${count('info')}; ${wall.toFixed(0)} s; written to ${resultsPath}\n`)
process.exitCode = lines.some(l => l.data.error !== undefined) ? 1 : 0
