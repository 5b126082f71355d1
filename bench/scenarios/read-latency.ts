/**
 * Target 3b: `GET /jobs/{id}/results?limit=1000` at 16 concurrent readers, each request at a random depth of the
 * job, against the same page reads done in this process by the gateway's own reader (`readResultBatch`: the same
 * COPY of result_pages, parsed, inflated and cut the same way) on a pool of 16 node-postgres connections, without
 * HTTP.
 */
import { cpus } from 'node:os'
import pg from 'pg'
import { encodeCursor } from '../../src/api/cursors.js'
import { readResultBatch } from '../../src/db/sql/result-stream.js'
import { cpuMeter } from '../cpu.js'
import type { GatewayProcess } from '../gateway-process.js'
import { load, warmUp } from '../load.js'
import { ms, times, type Line } from '../report.js'

const READERS = 16
const LIMIT = 1000
/** The gateway's default RESULT_PAGE_MAX_BYTES: the byte cap of a JSON page of results. */
const PAGE_MAX_BYTES = 4 * 1024 * 1024

/** p-th percentile (0..100) of unsorted numbers. */
function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)] ?? NaN
}

/** The page reads the gateway does for such a request (`readResultBatch`), `READERS` at once for `seconds`. */
async function databaseLatency (databaseUrl: string, jobId: string, pages: number, seconds: number): Promise<{ p50: number, p99: number, queries: number }> {
  const latencies: number[] = []
  const until = performance.now() + seconds * 1000
  const pool = new pg.Pool({ connectionString: databaseUrl, max: READERS })
  try {
    await Promise.all(Array.from({ length: READERS }, async () => {
      while (performance.now() < until) {
        const page = 1 + Math.floor(Math.random() * (pages - 1))
        const started = performance.now()
        const batch = await readResultBatch(pool, jobId, { page, position: LIMIT - 1 }, { limit: LIMIT, maxBytes: PAGE_MAX_BYTES })
        latencies.push(performance.now() - started)
        if (batch.starts.length !== LIMIT) throw new Error(`a page read at page ${page} held ${batch.starts.length} records, expected ${LIMIT}`)
      }
    }))
  } finally {
    await pool.end()
  }
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), queries: latencies.length }
}

export async function readLatency (gw: GatewayProcess, databaseUrl: string, job: { id: string, pages: number }, seconds: number): Promise<Line> {
  // A cursor after the last record of a page: the next request starts at the page after it.
  const path = (): string => {
    const page = 1 + Math.floor(Math.random() * (job.pages - 1))
    return `/jobs/${job.id}/results?limit=${LIMIT}&cursor=${encodeCursor([page, LIMIT - 1])}`
  }
  const opts = { url: gw.url, headers: { authorization: `Bearer ${gw.key}` }, connections: READERS, seconds, path }
  await warmUp(opts)
  const meter = await cpuMeter(databaseUrl, gw.pid)
  const http = await load(opts)
  const cpu = meter()
  const db = await databaseLatency(databaseUrl, job.id, job.pages, seconds)
  // Little's law on 2 cores: READERS requests in flight, each needing this much CPU somewhere on the machine.
  const perRequest = (s: number | null): number => (s ?? 0) * 1000 / http.requests
  const cpuMs = perRequest(cpu.gateway) + perRequest(cpu.postgres) + perRequest(cpu.bench)
  const floor = READERS * cpuMs / cpus().length
  return {
    id: '3b',
    what: `GET …/results?limit=${LIMIT} p99, ${READERS} concurrent readers at random depths`,
    gateway: `${ms(http.p99)} (${Math.round(http.rps)} req/s)`,
    baseline: `${ms(db.p99)} same reads (readResultBatch), ${READERS} pg clients`,
    ratio: times(http.p99 / db.p99),
    target: 'p99 < 25 ms',
    pass: http.p99 < 25,
    data: {
      readers: READERS,
      limit: LIMIT,
      seconds,
      gatewayP50: http.p50,
      gatewayP99: http.p99,
      gatewayRps: http.rps,
      gatewayRequests: http.requests,
      databaseP50: db.p50,
      databaseP99: db.p99,
      databaseQueries: db.queries,
      cpuSeconds: cpu,
      cpuMsPerRequest: cpuMs,
      latencyFloorMs: floor,
    },
    note: `CPU per request: gateway ${perRequest(cpu.gateway).toFixed(1)} ms, PostgreSQL ${cpu.postgres === null ? 'n/a' : perRequest(cpu.postgres).toFixed(1)} ms, ` +
      `autocannon ${perRequest(cpu.bench).toFixed(1)} ms; with ${READERS} readers on ${cpus().length} cores the mean latency cannot be below ${floor.toFixed(0)} ms`,
  }
}
