/**
 * Target 7: the gateway's memory while slow clients stream large records as NDJSON. A completed job of 1 MB
 * records is written straight into the database (by the gateway's own page insert: one result_pages row per
 * record); readers fetch it over raw sockets, taking the bytes at a fixed slow rate, so the gateway holds whatever
 * it has read ahead of them. Growth is VmRSS sampled every 50 ms, less
 * VmRSS just before the readers start. Baseline: one reader of the same job, in the same process, just before.
 */
import { randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import pg from 'pg'
import { insertRecords } from '../../src/db/sql/results.js'
import { SANDBOX_CREDENTIALS, startDrchronoSimulator } from '../../src/upstreams/drchrono/simulator/index.js'
import { run } from '../copy.js'
import { startGateway, type GatewayProcess } from '../gateway-process.js'
import { megabytes, times, type Line } from '../report.js'

const RECORD_BYTES = 1_000_000
const RECORDS = 24
const READERS = 6
/** Bytes a second each reader takes: far below what the gateway can send (hundreds of MB/s on loopback). */
const READ_RATE = 4_000_000
/** The gateway's NDJSON batch cap in this run (its default): a batch holds at most this, or one larger record. */
const BATCH_BYTES = 1024 * 1024
/** Per stream the gateway may hold about four batches: one being written, two queued, one read ahead. */
const PER_STREAM = 4 * (BATCH_BYTES + RECORD_BYTES)
const SLACK = 32 * 1024 * 1024

/** A raw HTTP/1.1 NDJSON read that takes at most `rate` bytes a second; resolves with the bytes received. */
function slowRead (gw: GatewayProcess, jobId: string, rate: number): Promise<number> {
  const { port } = new URL(gw.url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1')
    const started = performance.now()
    let bytes = 0
    let head = ''
    socket.on('connect', () => {
      socket.write(`GET /jobs/${jobId}/results HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${gw.key}\r\n` +
        'Accept: application/x-ndjson\r\nConnection: close\r\n\r\n')
    })
    socket.on('data', (chunk: Buffer) => {
      if (bytes === 0 && head.length < 64) head += chunk.toString('latin1', 0, 64)
      bytes += chunk.length
      const ahead = bytes / rate * 1000 - (performance.now() - started)
      if (ahead > 0) {
        socket.pause()
        setTimeout(() => socket.resume(), ahead)
      }
    })
    socket.on('error', reject)
    socket.on('close', () => {
      if (!head.startsWith('HTTP/1.1 200')) reject(new Error(`NDJSON read answered ${head.split('\r\n')[0] ?? '(nothing)'}`))
      else resolve(bytes)
    })
  })
}

/**
 * Readers at once, on a gateway of their own (RSS that an earlier phase grew would hide this phase's growth),
 * after a small warm-up read; the largest VmRSS growth sampled meanwhile, over VmRSS just before.
 */
async function growthDuring (databaseUrl: string, env: Record<string, string>, jobs: { big: string, small: string }, readers: number): Promise<{
  before: number,
  peak: number,
  bytes: number,
}> {
  const gw = await startGateway(databaseUrl, env)
  try {
    await slowRead(gw, jobs.small, 1e9)
    await new Promise(resolve => setTimeout(resolve, 1000))
    const before = gw.memory().rss
    let peak = before
    const timer = setInterval(() => { peak = Math.max(peak, gw.memory().rss) }, 50)
    try {
      const received = await Promise.all(Array.from({ length: readers }, () => slowRead(gw, jobs.big, READ_RATE)))
      peak = Math.max(peak, gw.memory().rss)
      return { before, peak, bytes: received.reduce((a, b) => a + b, 0) }
    } finally {
      clearInterval(timer)
    }
  } finally {
    await gw.stop()
  }
}

async function insertJob (databaseUrl: string, count: number, bytes: number): Promise<string> {
  const jobId = randomUUID()
  await run(databaseUrl, `INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records, finished_at, expires_at)
    VALUES ($1, 'bench', 'drchrono', 'patients', '{}', $2, 'completed', $3, now(), now() + interval '1 hour')`, [jobId, randomUUID(), count])
  // One page of records `{"i" : n, "pad" : "xx…"}` of `bytes` each, stored as a job's page is.
  const records = Array.from({ length: count }, (_, i) => {
    const head = `{"i" : ${i}, "pad" : "`
    return head + 'x'.repeat(bytes - head.length - 2) + '"}'
  })
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 })
  try {
    const client = await pool.connect()
    try {
      await insertRecords(client, jobId, 1, records)
    } finally {
      client.release()
    }
  } finally {
    await pool.end()
  }
  return jobId
}

export async function slowReaders (databaseUrl: string, log: (s: string) => void): Promise<Line[]> {
  // No job runs here; drchrono is configured only because production refuses an exposed upstream without it.
  const sim = await startDrchronoSimulator({ seed: 7 })
  try {
    const env = {
      UPSTREAMS: 'drchrono',
      DRCHRONO_BASE_URL: sim.url,
      DRCHRONO_ACCESS_TOKEN: SANDBOX_CREDENTIALS.accessToken,
      WORKER_CONCURRENCY: '0',
      MAX_RESULT_STREAMS_PER_CLIENT: String(READERS),
    }
    // The jobs exist before any gateway starts: the first gateway applies the migrations.
    const probe = await startGateway(databaseUrl, env)
    await probe.stop()
    const jobs = { big: await insertJob(databaseUrl, RECORDS, RECORD_BYTES), small: await insertJob(databaseUrl, 10, 1000) }
    log(`readers: ${RECORDS} records of 1 MB; one reader, then ${READERS}, each taking ${READ_RATE / 1e6} MB/s, each on a fresh gateway`)
    const one = await growthDuring(databaseUrl, env, jobs, 1)
    const six = await growthDuring(databaseUrl, env, jobs, READERS)
    const expected = READERS * RECORDS * (RECORD_BYTES + 1)
    if (six.bytes < expected || one.bytes < RECORDS * (RECORD_BYTES + 1)) throw new Error(`the readers got ${one.bytes} and ${six.bytes} bytes, expected all of ${expected}`)
    const growth1 = one.peak - one.before
    const growth6 = six.peak - six.before
    const target = READERS * PER_STREAM + SLACK
    return [{
      id: '7',
      what: `Memory: RSS growth, ${READERS} slow NDJSON readers (${READ_RATE / 1e6} MB/s each) of ${RECORDS} × 1 MB records`,
      gateway: megabytes(growth6),
      baseline: `${megabytes(growth1)} one slow reader`,
      ratio: times(growth6 / Math.max(growth1, 1)),
      target: `≤ ${megabytes(target)}`,
      pass: growth6 <= target,
      data: { readers: READERS, records: RECORDS, recordBytes: RECORD_BYTES, readRate: READ_RATE, batchBytes: BATCH_BYTES, target, one, six },
      note: `RSS before: ${megabytes(one.before)} (one reader), ${megabytes(six.before)} (${READERS}); each reader past the first: ` +
        `${megabytes((growth6 - growth1) / (READERS - 1))}; target ${READERS} × 4 × (batch cap + record) + ${megabytes(SLACK)}`,
    }]
  } finally {
    await sim.close()
  }
}
