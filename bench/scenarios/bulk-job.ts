/**
 * Targets 2, 3a, 5 and 11, then 3b, 4 and 12 on the same data: one large DrChrono job (1000 records a page,
 * generated as fast as the simulator can) stored by a gateway child process as result_pages (one row per page),
 * raw per-row COPY of the same records into a per-row table of the bench's own (bench_per_row, as results were
 * stored before), NDJSON streaming of the job against COPY TO STDOUT of that table, the disk each layout takes,
 * the sweeper's deletion of a copy of the job, and the process's peak RSS throughout. Then 5b: a small job on a
 * fresh gateway process, for its peak RSS.
 */
import pg from 'pg'
import { request } from 'undici'
import { streamResultBatches } from '../../src/db/sql/result-stream.js'
import { deleteResultsBatch } from '../../src/db/sql/results.js'
import { SANDBOX_CREDENTIALS, startDrchronoSimulator } from '../../src/upstreams/drchrono/simulator/index.js'
import { copyIn, copyOut, run, uuidLiteral } from '../copy.js'
import { cpuMeter, postgresCpuReader } from '../cpu.js'
import { UNMETERED_DRCHRONO, startGateway, type GatewayProcess } from '../gateway-process.js'
import { serverSeconds, submitJob, waitForJob } from '../jobs.js'
import { cpuNote, megabytes, microsEach, ms, percent, perSecond, seconds, times, type Line } from '../report.js'
import { apiOverhead } from './api-overhead.js'
import { readLatency } from './read-latency.js'

const PAGE_SIZE = 1000
const RESOURCE = 'line_items'

const MB = 1024 * 1024
/** Line 10's bound on the gateway's peak RSS (a FHIR export): line 5's bound before results were stored as pages. */
export const PEAK_RSS_BOUND_BYTES = 250 * MB
/** The bound as the targets print it. */
export const PEAK_RSS_BOUND = `< ${PEAK_RSS_BOUND_BYTES / MB} MB`
/** Line 5: peak RSS over the ingest and NDJSON stream of the large job. */
const INGEST_RSS_BOUND_BYTES = 160 * MB
/** Line 5b: peak RSS of a fresh gateway running a DrChrono job of SMALL_JOB_PAGES × 1000 records. */
const SMALL_JOB_RSS_BOUND_BYTES = 150 * MB
const SMALL_JOB_PAGES = 40
/** The sweeper's default batch of stored pages per DELETE (src/engine/sweeper.ts, `defaultBatches.results`). */
const SWEEP_RESULTS_BATCH = 200
/** Line 12's bound on the database time of deleting a job's stored pages. */
const EXPIRY_BOUND_MS = 100
/** Line ids of the lines issue 13 added (7 and 8 are the slow-readers and sweep lines). */
const DISK_LINE = '11'
const EXPIRY_LINE = '12'

/**
 * The bench's own per-row results table: results as they were stored before result_pages (one row per record, as
 * job_results was, without its foreign key), the baseline of ingest, read and disk per record.
 */
const PER_ROW_TABLE = 'bench_per_row'

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

async function vacuum (databaseUrl: string, table: string): Promise<void> {
  // Autovacuum would otherwise wake up at a random point of the next measurement after a million inserts.
  await run(databaseUrl, `VACUUM (ANALYZE) ${table}`)
}

const totalSize = async (databaseUrl: string, table: string): Promise<number> =>
  Number((await run(databaseUrl, `SELECT pg_total_relation_size('${table}')::float8 AS bytes`)).rows[0]?.bytes)

/** COPY's text format escapes these in a column's value. */
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * Every stored record of the job as (job_id, page, position, record) rows of COPY's text format, in order, read
 * with the gateway's own reader (stored bodies may be compressed by the gateway, which SQL cannot undo).
 */
async function perRowRecords (databaseUrl: string, jobId: string): Promise<{ chunks: Buffer[], rows: number }> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 })
  const chunks: Buffer[] = []
  let rows = 0
  try {
    for await (const batch of streamResultBatches(pool, jobId, { limit: 100_000, maxBytes: 16 * 1024 * 1024 })) {
      let text = ''
      batch.starts.forEach((start, i) => {
        const record = batch.data.toString('utf8', start, batch.ends[i]).replace(/[\\\n\r\t]/g, c => COPY_ESCAPES[c] as string)
        text += `${jobId}\t${batch.pages[i] as number}\t${batch.positions[i] as number}\t${record}\n`
      })
      rows += batch.starts.length
      chunks.push(Buffer.from(text))
      batch.release?.()
    }
  } finally {
    await pool.end()
  }
  return { chunks, rows }
}

/** A completed job row, for results the bench stores itself. */
async function benchJob (databaseUrl: string, clientId: string): Promise<string> {
  const { rows: [row] } = await run(databaseUrl, `INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status)
    VALUES (gen_random_uuid(), $1, 'drchrono', $2, '{}'::jsonb, $1, 'completed') RETURNING id`, [clientId, RESOURCE])
  return (row as { id: string }).id
}

/**
 * Line 12: the job's pages deleted as the sweeper deletes them (deleteResultsBatch, SWEEP_RESULTS_BATCH pages a
 * statement, until a batch comes back short), on a copy of the job so that its own results stay. Wall time of the
 * loop on one pooled loopback connection (each statement's round trip and commit included).
 */
async function expireCopy (databaseUrl: string, jobId: string): Promise<{ ms: number, pages: number, records: number, statements: number }> {
  const copyId = await benchJob(databaseUrl, 'bench-expiry-copy')
  await run(databaseUrl, `INSERT INTO result_pages (job_id, page, first, count, plain, ends, codec, bytes, body)
    SELECT $1, page, first, count, plain, ends, codec, bytes, body FROM result_pages WHERE job_id = $2 ORDER BY page, first`, [copyId, jobId])
  // As an hour-old job's pages would be: hint bits set and statistics current.
  await vacuum(databaseUrl, 'result_pages')
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 })
  try {
    await pool.query('SELECT 1')
    let pages = 0
    let records = 0
    let statements = 0
    const started = performance.now()
    for (;;) {
      const gone = await deleteResultsBatch(pool, copyId, SWEEP_RESULTS_BATCH)
      statements++
      pages += gone.pages
      records += gone.records
      if (gone.pages < SWEEP_RESULTS_BATCH) break
    }
    return { ms: performance.now() - started, pages, records, statements }
  } finally {
    await pool.end()
    await run(databaseUrl, 'DELETE FROM jobs WHERE id = $1', [copyId])
  }
}

/** Line 5b: a small DrChrono job on a fresh gateway process; its peak RSS after the job, then after an NDJSON read of it. */
async function smallJobMemory (databaseUrl: string, env: (simUrl: string) => Record<string, string>): Promise<{
  idle: number, afterJob: number, afterRead: number, records: number, seconds: number | null,
}> {
  const records = SMALL_JOB_PAGES * PAGE_SIZE
  const sim = await startDrchronoSimulator({ seed: 7, inProgressPolls: 0, generationMs: 0, recordCount: { [RESOURCE]: records } })
  let gw: GatewayProcess | undefined
  try {
    gw = await startGateway(databaseUrl, env(sim.url))
    const idle = gw.memory().rss
    const job = await submitJob(gw, { upstream: 'drchrono', resource: RESOURCE, params: { page_size: PAGE_SIZE } })
    const { job: done } = await waitForJob(gw, job.id, { pollMs: 100, timeoutMs: 120_000 })
    if (done.progress.records !== records) throw new Error(`the small job stored ${done.progress.records} records, expected ${records}`)
    const afterJob = gw.memory().hwm
    const read = await streamNdjson(gw, job.id)
    if (read.lines !== records) throw new Error(`the small job's NDJSON stream had ${read.lines} lines, expected ${records}`)
    return { idle, afterJob, afterRead: gw.memory().hwm, records, seconds: serverSeconds(done) }
  } finally {
    await gw?.stop()
    await sim.close()
  }
}

export async function bulkJob (databaseUrl: string, settings: BulkSettings, log: (s: string) => void): Promise<Line[]> {
  const { records } = settings
  if (records % PAGE_SIZE !== 0 || records / PAGE_SIZE > 1000) throw new Error(`BENCH_RECORDS must be a multiple of ${PAGE_SIZE} up to 1,000,000`)
  const pages = records / PAGE_SIZE
  // keepPages: the simulator generates each page's records once, here, and serves them again during the job. Made
  // during the job, they cost it more CPU than the gateway spends storing them (12 µs a record), on the two cores the
  // gateway and PostgreSQL run on; a real DrChrono runs on its own machines.
  const sim = await startDrchronoSimulator({ seed: 7, inProgressPolls: 0, generationMs: 0, recordCount: { [RESOURCE]: records }, keepPages: true })
  let gw: GatewayProcess | undefined
  try {
    log(`bulk: simulator indexing ${records.toLocaleString('en-US')} ${RESOURCE} and building its ${pages} pages`)
    const headers = { authorization: `Bearer ${SANDBOX_CREDENTIALS.accessToken}`, 'content-type': 'application/json' }
    const build = async (page: number): Promise<void> => {
      const post = await fetch(`${sim.url}/api/${RESOURCE}_list?page=${page}&page_size=${PAGE_SIZE}`, { method: 'POST', headers })
      if (post.status !== 201) throw new Error(`warming the simulator: POST answered ${post.status}`)
      const done = await fetch(`${sim.url}/api/${RESOURCE}_list?uuid=${(await post.json() as { uuid: string }).uuid}`, { headers })
      if (done.status !== 200) throw new Error(`warming the simulator: GET answered ${done.status}`)
      await done.arrayBuffer()
    }
    await build(1) // indexes the list
    for (let page = 2; page <= pages; page += 4) await Promise.all([0, 1, 2, 3].filter(i => page + i <= pages).map(i => build(page + i)))
    sim.state.reset()

    const gatewayEnv = (simUrl: string): Record<string, string> => ({
      UPSTREAMS: 'drchrono',
      DRCHRONO_BASE_URL: simUrl,
      DRCHRONO_ACCESS_TOKEN: SANDBOX_CREDENTIALS.accessToken,
      DRCHRONO_PAGE_CONCURRENCY: String(settings.concurrency),
      DRCHRONO_POLL_INTERVAL_MS: '10',
      // The gateway's own work is measured here, not DrChrono's budget (lines 1d and 1e are at the defaults).
      ...UNMETERED_DRCHRONO,
    })
    gw = await startGateway(databaseUrl, gatewayEnv(sim.url))
    const idle = gw.memory()
    // Line 11 counts what the job adds to result_pages (the gateway applied the migrations, so the table exists).
    await vacuum(databaseUrl, 'result_pages')
    const pagesBytesBefore = await totalSize(databaseUrl, 'result_pages')
    const otherPages = Number((await run(databaseUrl, 'SELECT count(*)::float8 AS n FROM result_pages')).rows[0]?.n)
    const sampler = memorySampler(gw)

    log(`bulk: gateway job, ${pages} pages × ${PAGE_SIZE} records`)
    sampler.phase('ingest')
    const ingestCpu = await cpuMeter(databaseUrl, gw.pid)
    const job = await submitJob(gw, { upstream: 'drchrono', resource: RESOURCE, params: { page_size: PAGE_SIZE } })
    const { job: done } = await waitForJob(gw, job.id, { pollMs: 250, timeoutMs: 540_000 })
    const ingestCpuSeconds = ingestCpu()
    if (done.progress.records !== records) throw new Error(`the job stored ${done.progress.records} records, expected ${records}`)
    // Read once by the job: the kept pages (as many bytes as the records) are not needed by the lines after it.
    sim.state.forgetPages()
    const ingestSeconds = serverSeconds(done) ?? NaN
    const ingestRate = records / ingestSeconds
    // A body holds each record followed by a line feed.
    const { rows: [size] } = await run(databaseUrl, `SELECT (sum(bytes) - sum(count))::float8 AS bytes, count(*)::int AS rows
      FROM result_pages WHERE job_id = $1`, [job.id])
    const recordBytes = (size as { bytes: number }).bytes / records
    const pageRows = (size as { rows: number }).rows

    sampler.phase('copy baselines')
    await vacuum(databaseUrl, 'result_pages')
    const pagesBytes = await totalSize(databaseUrl, 'result_pages') - pagesBytesBefore
    log(`bulk: COPY FROM STDIN of the same records into ${PER_ROW_TABLE}`)
    await run(databaseUrl, `DROP TABLE IF EXISTS ${PER_ROW_TABLE}`)
    await run(databaseUrl, `CREATE TABLE ${PER_ROW_TABLE} (job_id uuid NOT NULL, page int NOT NULL, position int NOT NULL, record text NOT NULL,
      PRIMARY KEY (job_id, page, position)) WITH (autovacuum_vacuum_insert_threshold = -1)`)
    const { chunks, rows: extracted } = await perRowRecords(databaseUrl, job.id)
    if (extracted !== records) throw new Error(`result_pages gave back ${extracted} records, expected ${records}`)
    const postgresCpu = await postgresCpuReader(databaseUrl)
    const copied = await copyIn(databaseUrl, `${PER_ROW_TABLE} (job_id, page, position, record)`, chunks, { postgresCpu })
    chunks.length = 0
    if (copied.rows !== records) throw new Error(`COPY FROM stored ${copied.rows} rows, expected ${records}`)
    const copyRate = records / copied.seconds
    await vacuum(databaseUrl, PER_ROW_TABLE)
    const perRowBytes = await totalSize(databaseUrl, PER_ROW_TABLE)

    log('bulk: COPY TO STDOUT, then NDJSON through the gateway')
    const select = `SELECT record FROM ${PER_ROW_TABLE} WHERE job_id = ${uuidLiteral(job.id)} ORDER BY page, position`
    await copyOut(databaseUrl, select) // warms the cache for both readers
    const copyRead = await copyOut(databaseUrl, select, { postgresCpu })
    // For information: the stored bytes as they are (compressed by the gateway), one body per row, in binary COPY.
    const bodies = `SELECT body FROM result_pages WHERE job_id = ${uuidLiteral(job.id)} ORDER BY page, first`
    await copyOut(databaseUrl, bodies, { binary: true })
    const copyBodies = await copyOut(databaseUrl, bodies, { postgresCpu, binary: true })
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

    log(`bulk: expiry of a copy of the job, ${SWEEP_RESULTS_BATCH} pages a statement as the sweeper deletes them`)
    const expiry = await expireCopy(databaseUrl, job.id)
    if (expiry.records !== records) throw new Error(`the expiry deleted ${expiry.records} records, expected ${records}`)
    await gw.stop()
    await run(databaseUrl, `DROP TABLE IF EXISTS ${PER_ROW_TABLE}`)

    log(`bulk: a ${SMALL_JOB_PAGES}-page job on a fresh gateway, for its peak RSS`)
    const small = await smallJobMemory(databaseUrl, gatewayEnv)

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
      copyTable: PER_ROW_TABLE,
      copySeconds: copied.seconds,
      copyRate,
      cpuSeconds: ingestCpuSeconds,
      copyPostgresCpuSeconds: copied.postgresCpu,
    }
    const diskRatio = (pagesBytes / records) / (perRowBytes / records)
    return [
      {
        id: '2a',
        what: `Ingest: records stored/s during the job (${shape})`,
        gateway: perSecond(ingestRate, 'rec'),
        baseline: `${perSecond(copyRate, 'rec')} per-row COPY FROM STDIN`,
        ratio: times(ingestRate / copyRate),
        target: '≥ 1.0× per-row COPY',
        pass: ingestRate / copyRate >= 1.0,
        data: ingestData,
        note: cpuNote(ingestCpuSeconds, records, 'simulator', `COPY FROM into ${PER_ROW_TABLE}: PostgreSQL ${microsEach(copied.postgresCpu, records)}`),
      },
      {
        id: '2b',
        what: `Ingest: absolute rate (${megabytes(ingestRate * recordBytes)}/s)`,
        gateway: perSecond(ingestRate, 'rec'),
        baseline: `${perSecond(copyRate, 'rec')} per-row COPY FROM STDIN`,
        ratio: times(ingestRate / copyRate),
        target: '≥ 80,000 rec/s',
        pass: ingestRate >= 80_000,
        data: ingestData,
      },
      {
        id: '3a',
        what: `Read: NDJSON stream of the whole job (${megabytes(ndjson.bytes)})`,
        gateway: `${perSecond(records / ndjson.seconds, 'rec')} (${seconds(ndjson.seconds)})`,
        baseline: `${perSecond(copyRead.rows / copyRead.seconds, 'rec')} per-row COPY TO STDOUT (${seconds(copyRead.seconds)})`,
        ratio: `${percent(readRatio)} of COPY`,
        target: '≥ 90% of COPY',
        pass: readRatio >= 0.9,
        data: {
          records,
          ndjsonSeconds: ndjson.seconds,
          ndjsonBytes: ndjson.bytes,
          copySeconds: copyRead.seconds,
          copyBytes: copyRead.bytes,
          copyRows: copyRead.rows,
          ratio: readRatio,
          bodiesCopySeconds: copyBodies.seconds,
          bodiesCopyBytes: copyBodies.bytes,
          cpuSeconds: readCpuSeconds,
          copyPostgresCpuSeconds: copyRead.postgresCpu,
          bodiesCopyPostgresCpuSeconds: copyBodies.postgresCpu,
        },
        note: cpuNote(readCpuSeconds, records, 'reader', `COPY TO of ${PER_ROW_TABLE}: PostgreSQL ${microsEach(copyRead.postgresCpu, records)}`) +
          '; binary COPY TO of the result_pages bodies as stored (deflated, so not a like-for-like baseline): ' +
          `${perSecond(records / copyBodies.seconds, 'rec')} (${seconds(copyBodies.seconds)}, ${megabytes(copyBodies.bytes)})`,
      },
      latencyLine,
      ...overheadLines,
      {
        id: '5',
        what: `Memory: gateway peak RSS (VmHWM) over ingest + NDJSON stream of ${records.toLocaleString('en-US')} records`,
        gateway: megabytes(memory.hwm),
        baseline: `${megabytes(idle.rss)} idle after start`,
        ratio: times(memory.hwm / idle.rss),
        target: `< ${INGEST_RSS_BOUND_BYTES / MB} MB`,
        pass: memory.hwm < INGEST_RSS_BOUND_BYTES,
        data: { hwmBytes: memory.hwm, peakRssBytesByPhase: memory.peaks, idleRssBytes: idle.rss },
        note: `largest RSS sampled: ${Object.entries(memory.peaks).map(([phase, bytes]) => `${phase} ${megabytes(bytes)}`).join(', ')}`,
      },
      {
        id: '5b',
        what: `Memory: peak RSS (VmHWM) of a fresh gateway running a DrChrono job of ${small.records.toLocaleString('en-US')} records (${SMALL_JOB_PAGES} pages × ${PAGE_SIZE})`,
        gateway: megabytes(small.afterJob),
        baseline: `${megabytes(small.idle)} idle after start`,
        ratio: times(small.afterJob / small.idle),
        target: `< ${SMALL_JOB_RSS_BOUND_BYTES / MB} MB`,
        pass: small.afterJob < SMALL_JOB_RSS_BOUND_BYTES,
        data: {
          hwmAfterJobBytes: small.afterJob, hwmAfterReadBytes: small.afterRead, idleRssBytes: small.idle, records: small.records, jobSeconds: small.seconds,
        },
        note: `job ran ${small.seconds === null ? 'n/a' : seconds(small.seconds)}; VmHWM after an NDJSON read of the job too: ${megabytes(small.afterRead)}`,
      },
      {
        id: DISK_LINE,
        what: `Disk per record: result_pages (${pageRows.toLocaleString('en-US')} rows) vs one row per record, ${shape}`,
        gateway: `${(pagesBytes / records).toFixed(1)} B/rec (${megabytes(pagesBytes)})`,
        baseline: `${(perRowBytes / records).toFixed(1)} B/rec (${megabytes(perRowBytes)}) ${PER_ROW_TABLE}`,
        ratio: percent(diskRatio),
        target: '≤ 50% of per-row',
        pass: diskRatio <= 0.5,
        data: { records, recordBytes, pageRows, pagesBytes, pagesBytesBefore, otherPagesBefore: otherPages, perRowBytes, ratio: diskRatio },
        note: `pg_total_relation_size after VACUUM: result_pages's growth over the job (it held ${otherPages} rows of other jobs before), ` +
          `${PER_ROW_TABLE} holding only this job's records`,
      },
      {
        id: EXPIRY_LINE,
        what: `Expiry: the job's ${expiry.pages.toLocaleString('en-US')} stored rows deleted as the sweeper does (${SWEEP_RESULTS_BATCH} a statement), ${records.toLocaleString('en-US')} records`,
        gateway: ms(expiry.ms),
        baseline: '-',
        ratio: `${(expiry.ms * 1000 / records).toFixed(2)} µs/rec`,
        target: `< ${EXPIRY_BOUND_MS} ms`,
        pass: expiry.ms < EXPIRY_BOUND_MS,
        data: { ...expiry, records, batch: SWEEP_RESULTS_BATCH },
        note: `wall time of ${expiry.statements} deleteResultsBatch statements on one loopback connection (round trips and commits included), ` +
          'on a copy of the job\'s pages made with INSERT … SELECT and vacuumed',
      },
    ]
  } finally {
    await gw?.stop()
    await sim.close()
  }
}
