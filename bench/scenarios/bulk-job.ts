/**
 * Targets 2, 3a and 5, then 3b and 4 on the same data: one large DrChrono job (1000 records a page, generated
 * as fast as the simulator can) stored by a gateway child process, raw COPY of the same rows into the same table,
 * NDJSON streaming of the job against COPY TO STDOUT of the same rows, and the process's peak RSS throughout.
 */
import { request } from 'undici'
import { SANDBOX_CREDENTIALS, startDrchronoSimulator } from '../../src/upstreams/drchrono/simulator/index.js'
import { copyIn, copyOut, run, uuidLiteral } from '../copy.js'
import { cpuMeter, postgresCpuReader } from '../cpu.js'
import { UNMETERED_DRCHRONO, startGateway, type GatewayProcess } from '../gateway-process.js'
import { serverSeconds, submitJob, waitForJob } from '../jobs.js'
import { cpuNote, megabytes, microsEach, percent, perSecond, seconds, times, type Line } from '../report.js'
import { apiOverhead } from './api-overhead.js'
import { readLatency } from './read-latency.js'

const PAGE_SIZE = 1000
const RESOURCE = 'line_items'

/** Line 5's bound on the gateway's peak RSS; line 10 (a FHIR export) is held to the same. */
export const PEAK_RSS_BOUND_BYTES = 250 * 1024 * 1024
/** The bound as the targets print it. */
export const PEAK_RSS_BOUND = `< ${PEAK_RSS_BOUND_BYTES / 1024 / 1024} MB`

export interface BulkSettings { records: number, concurrency: number, loadSeconds: number }

/** Samples VmRSS every 100 ms, keeping the largest per phase; VmHWM (the kernel's own peak) is read at the end. */
function memorySampler (gw: GatewayProcess) {
  const peaks: Record<string, number> = {}
  let phase = 'start'
  const sample = (): void => { peaks[phase] = Math.max(peaks[phase] ?? 0, gw.memory().rss) }
  const timer = setInterval(sample, 100)
  return {
    phase (name: string): void { sample(); phase = name },
    stop: () => { sample(); clearInterval(timer); return { peaks, hwm: gw.memory().hwm } },
  }
}

/** The whole job as NDJSON over one connection; counts bytes and lines. */
async function streamNdjson (gw: GatewayProcess, jobId: string): Promise<{ seconds: number, bytes: number, lines: number }> {
  const started = performance.now()
  const res = await request(`${gw.url}/jobs/${jobId}/results`, { headers: { authorization: `Bearer ${gw.key}`, accept: 'application/x-ndjson' } })
  if (res.statusCode !== 200) throw new Error(`NDJSON read answered ${res.statusCode}: ${(await res.body.text()).slice(0, 300)}`)
  let bytes = 0
  let lines = 0
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    bytes += chunk.length
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
  }
  return { seconds: (performance.now() - started) / 1000, bytes, lines }
}

async function vacuum (databaseUrl: string): Promise<void> {
  // Autovacuum would otherwise wake up at a random point of the next measurement after a million inserts.
  await run(databaseUrl, 'VACUUM (ANALYZE) job_results')
}

export async function bulkJob (databaseUrl: string, settings: BulkSettings, log: (s: string) => void): Promise<Line[]> {
  const { records } = settings
  if (records % PAGE_SIZE !== 0 || records / PAGE_SIZE > 1000) throw new Error(`BENCH_RECORDS must be a multiple of ${PAGE_SIZE} up to 1,000,000`)
  const pages = records / PAGE_SIZE
  const sim = await startDrchronoSimulator({ seed: 7, inProgressPolls: 0, generationMs: 0, recordCount: { [RESOURCE]: records } })
  let gw: GatewayProcess | undefined
  try {
    // The simulator indexes the whole list on its first POST; done here, that is not counted as ingest.
    log(`bulk: simulator indexing ${records.toLocaleString('en-US')} ${RESOURCE}`)
    const warm = await fetch(`${sim.url}/api/${RESOURCE}_list?page=1&page_size=${PAGE_SIZE}`, {
      method: 'POST', headers: { authorization: `Bearer ${SANDBOX_CREDENTIALS.accessToken}`, 'content-type': 'application/json' },
    })
    if (warm.status !== 201) throw new Error(`warming the simulator: POST answered ${warm.status}`)
    sim.state.reset()

    gw = await startGateway(databaseUrl, {
      UPSTREAMS: 'drchrono',
      DRCHRONO_BASE_URL: sim.url,
      DRCHRONO_ACCESS_TOKEN: SANDBOX_CREDENTIALS.accessToken,
      DRCHRONO_PAGE_CONCURRENCY: String(settings.concurrency),
      DRCHRONO_POLL_INTERVAL_MS: '10',
      // The gateway's own work is measured here, not DrChrono's budget (lines 1d and 1e are at the defaults).
      ...UNMETERED_DRCHRONO,
    })
    const idle = gw.memory()
    const sampler = memorySampler(gw)

    log(`bulk: gateway job, ${pages} pages × ${PAGE_SIZE} records`)
    sampler.phase('ingest')
    const ingestCpu = await cpuMeter(databaseUrl, gw.pid)
    const job = await submitJob(gw, { upstream: 'drchrono', resource: RESOURCE, params: { page_size: PAGE_SIZE } })
    const { job: done } = await waitForJob(gw, job.id, { pollMs: 250, timeoutMs: 540_000 })
    const ingestCpuSeconds = ingestCpu()
    if (done.progress.records !== records) throw new Error(`the job stored ${done.progress.records} records, expected ${records}`)
    const ingestSeconds = serverSeconds(done) ?? NaN
    const ingestRate = records / ingestSeconds
    const { rows: [size] } = await run(databaseUrl, 'SELECT sum(octet_length(record))::float8 AS bytes FROM job_results WHERE job_id = $1', [job.id])
    const recordBytes = (size as { bytes: number }).bytes / records

    sampler.phase('copy baselines')
    log('bulk: COPY FROM STDIN of the same rows')
    await vacuum(databaseUrl)
    const { rows: [copyJob] } = await run(databaseUrl, `INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status)
      VALUES (gen_random_uuid(), 'bench-copy-baseline', 'drchrono', $1, '{}'::jsonb, 'bench-copy-baseline', 'completed') RETURNING id`, [RESOURCE])
    const chunks: Buffer[] = []
    await copyOut(databaseUrl, `SELECT ${uuidLiteral((copyJob as { id: string }).id)}, page, position, record FROM job_results WHERE job_id = ${uuidLiteral(job.id)} ORDER BY page, position`, { sink: c => chunks.push(c) })
    const postgresCpu = await postgresCpuReader(databaseUrl)
    const copied = await copyIn(databaseUrl, 'job_results (job_id, page, position, record)', chunks, { postgresCpu })
    chunks.length = 0
    if (copied.rows !== records) throw new Error(`COPY FROM stored ${copied.rows} rows, expected ${records}`)
    const copyRate = records / copied.seconds
    await vacuum(databaseUrl)

    log('bulk: COPY TO STDOUT, then NDJSON through the gateway')
    const select = `SELECT record FROM job_results WHERE job_id = ${uuidLiteral(job.id)} ORDER BY page, position`
    await copyOut(databaseUrl, select) // warms the cache for both readers
    const copyRead = await copyOut(databaseUrl, select, { postgresCpu })
    const readCpu = await cpuMeter(databaseUrl, gw.pid)
    sampler.phase('ndjson')
    const ndjson = await streamNdjson(gw, job.id)
    const readCpuSeconds = readCpu()
    if (ndjson.lines !== records) throw new Error(`the NDJSON stream had ${ndjson.lines} lines, expected ${records}`)
    const memory = sampler.stop()
    const readRatio = (records / ndjson.seconds) / (copyRead.rows / copyRead.seconds)

    log('bulk: result pages at 16 readers, then GET /jobs/{id} against a bare route')
    const latencyLine = await readLatency(gw, databaseUrl, { id: job.id, pages }, settings.loadSeconds)
    const overheadLines = await apiOverhead(gw, databaseUrl, job.id, settings.loadSeconds)

    const shape = `${records.toLocaleString('en-US')} records of ${Math.round(recordBytes)} B`
    const ingestData = {
      records,
      pages,
      pageSize: PAGE_SIZE,
      resource: RESOURCE,
      concurrency: settings.concurrency,
      recordBytes,
      ingestSeconds,
      ingestRate,
      ingestMBps: ingestRate * recordBytes / 1e6,
      copySeconds: copied.seconds,
      copyRate,
      cpuSeconds: ingestCpuSeconds,
      copyPostgresCpuSeconds: copied.postgresCpu,
    }
    return [
      {
        id: '2a',
        what: `Ingest: records stored/s during the job (${shape})`,
        gateway: perSecond(ingestRate, 'rec'),
        baseline: `${perSecond(copyRate, 'rec')} COPY FROM STDIN`,
        ratio: `${percent(ingestRate / copyRate)} of COPY`,
        target: '≥ 50% of COPY',
        pass: ingestRate / copyRate >= 0.5,
        data: ingestData,
        note: cpuNote(ingestCpuSeconds, records, 'simulator', `COPY FROM: PostgreSQL ${microsEach(copied.postgresCpu, records)}`),
      },
      {
        id: '2b',
        what: `Ingest: absolute rate (${megabytes(ingestRate * recordBytes)}/s)`,
        gateway: perSecond(ingestRate, 'rec'),
        baseline: `${perSecond(copyRate, 'rec')} COPY FROM STDIN`,
        ratio: `${percent(ingestRate / copyRate)} of COPY`,
        target: '≥ 50,000 rec/s',
        pass: ingestRate >= 50_000,
        data: ingestData,
      },
      {
        id: '3a',
        what: `Read: NDJSON stream of the whole job (${megabytes(ndjson.bytes)})`,
        gateway: `${perSecond(records / ndjson.seconds, 'rec')} (${seconds(ndjson.seconds)})`,
        baseline: `${perSecond(copyRead.rows / copyRead.seconds, 'rec')} COPY TO STDOUT (${seconds(copyRead.seconds)})`,
        ratio: `${percent(readRatio)} of COPY`,
        target: '≥ 60% of COPY',
        pass: readRatio >= 0.6,
        data: {
          records,
          ndjsonSeconds: ndjson.seconds,
          ndjsonBytes: ndjson.bytes,
          copySeconds: copyRead.seconds,
          copyBytes: copyRead.bytes,
          copyRows: copyRead.rows,
          ratio: readRatio,
          cpuSeconds: readCpuSeconds,
          copyPostgresCpuSeconds: copyRead.postgresCpu,
        },
        note: cpuNote(readCpuSeconds, records, 'reader', `COPY TO: PostgreSQL ${microsEach(copyRead.postgresCpu, records)}`),
      },
      latencyLine,
      ...overheadLines,
      {
        id: '5',
        what: 'Memory: gateway peak RSS (VmHWM) over ingest + NDJSON stream',
        gateway: megabytes(memory.hwm),
        baseline: `${megabytes(idle.rss)} idle after start`,
        ratio: times(memory.hwm / idle.rss),
        target: PEAK_RSS_BOUND,
        pass: memory.hwm < PEAK_RSS_BOUND_BYTES,
        data: { hwmBytes: memory.hwm, peakRssBytesByPhase: memory.peaks, idleRssBytes: idle.rss },
        note: `largest RSS sampled: ${Object.entries(memory.peaks).map(([phase, bytes]) => `${phase} ${megabytes(bytes)}`).join(', ')}`,
      },
    ]
  } finally {
    await gw?.stop()
    await sim.close()
  }
}
