/**
 * Target 8: a sweep costs what it deletes, not the history the tables hold. One sweep (the real Sweeper) of the
 * same work (100 jobs past expiry with 1,000 records each, one stored page of result_pages per job) in two databases
 * of the same server: one holding 1,000,000 historic jobs (finished, erased, already swept) and 1,000,000 live
 * records (1,000 completed jobs within their TTL, a page of 1,000 each), and the baseline with nothing else.
 * Median of three rounds each, interleaved. For information, the note gives what the statement the sweeper ran
 * before (which jobs still hold rows: an EXISTS over every finished job) costs on that history.
 */
import pg from 'pg'
import { pino } from 'pino'
import { applyMigrations } from '../../src/db/migrate.js'
import { withConnection } from '../../src/db/sql/sql.js'
import { Sweeper } from '../../src/engine/sweeper.js'
import { run } from '../copy.js'
import { seconds, times, type Line } from '../report.js'

export interface SweepSettings { historicJobs: number, liveRows: number }

const DUE_JOBS = 100
const ROWS_PER_DUE_JOB = 1000
const LIVE_JOBS = 1000
const ROUNDS = 3
const RECORD = '{"id":123456,"kind":"line_item","amount":"12.50","note":"a bench record of ordinary length"}'

const quiet = pino({ level: 'silent' })

/**
 * INSERT … SELECT of one stored page of `$2` copies of the record `$1` (as the gateway stores a page: each record
 * followed by a line feed, `ends` where each ends; the text stored as it is, codec 0) for every job `where`
 * selects.
 */
const insertPages = (where: string): string => `
    INSERT INTO result_pages (job_id, page, first, count, plain, ends, codec, bytes, body)
    SELECT j.id, 1, 0, $2::int, true, p.ends, 0, octet_length(p.body), p.body
    FROM jobs j, (SELECT array_agg((g * (octet_length($1::text) + 1) + octet_length($1::text))::int ORDER BY g) AS ends,
        convert_to(repeat($1::text || E'\\n', $2::int), 'UTF8') AS body
      FROM generate_series(0, $2::int - 1) g) p
    WHERE ${where}`

function withDatabase (url: string, name: string): string {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

async function createDatabase (serverUrl: string, name: string): Promise<string> {
  await withConnection(serverUrl, async c => {
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    await c.query(`CREATE DATABASE "${name}"`)
  })
  const url = withDatabase(serverUrl, name)
  await applyMigrations(url, quiet)
  return url
}

async function seedHistory (url: string, s: SweepSettings): Promise<void> {
  await run(url, `
    INSERT INTO jobs (id, client_id, upstream, resource, params, status, records, pages_done, finished_at, expires_at, erased_at)
    SELECT gen_random_uuid(), 'client-' || (g % 7), 'drchrono', 'line_items', NULL, 'expired', 1000, 1,
      now() - make_interval(secs => g % 2000000), now() - make_interval(secs => g % 2000000) + interval '1 hour',
      now() - make_interval(secs => g % 2000000) + interval '1 hour'
    FROM generate_series(1, $1::int) g`, [s.historicJobs])
  await run(url, `
    INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records, pages_done, finished_at, expires_at)
    SELECT gen_random_uuid(), 'client-live', 'drchrono', 'line_items', '{"since":"2024-01-01"}', 'live-' || g, 'completed', $1::int, 1,
      now(), now() + interval '1 hour'
    FROM generate_series(1, ${LIVE_JOBS}) g`, [Math.ceil(s.liveRows / LIVE_JOBS)])
  await run(url, insertPages("j.client_id = 'client-live'"), [RECORD, Math.ceil(s.liveRows / LIVE_JOBS)])
}

/** The work each measured sweep does: jobs just past expiry, with their stored page. */
async function seedDueWork (url: string): Promise<void> {
  await run(url, `
    INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records, pages_done, finished_at, expires_at)
    SELECT gen_random_uuid(), 'client-due', 'drchrono', 'line_items', '{"since":"2024-01-01"}', 'due-' || g, 'completed', ${ROWS_PER_DUE_JOB}, 1,
      now() - interval '1 hour', now() - interval '1 second'
    FROM generate_series(1, ${DUE_JOBS}) g`)
  await run(url, insertPages("j.client_id = 'client-due' AND j.erased_at IS NULL"), [RECORD, ROWS_PER_DUE_JOB])
  await run(url, 'ANALYZE jobs')
}

async function timedSweep (url: string): Promise<{ seconds: number, rows: number, erased: number }> {
  await seedDueWork(url)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  try {
    const sweeper = new Sweeper(pool, 3_600_000, quiet, { resultTtlSeconds: 3600, jobRetentionSeconds: 30 * 86_400, idempotencyKeyTtlHours: 24 })
    const report = await sweeper.sweep()
    if (report.erased !== DUE_JOBS || report.rowsDeleted !== DUE_JOBS * ROWS_PER_DUE_JOB) {
      throw new Error(`the sweep did other work than planned: ${JSON.stringify(report)}`)
    }
    return { seconds: report.seconds, rows: report.rowsDeleted, erased: report.erased }
  } finally {
    await pool.end()
  }
}

/** What the sweeper's former "which jobs still hold rows" statement (on result_pages) costs on this database, in ms (EXPLAIN ANALYZE). */
async function formerStatementMs (url: string): Promise<number> {
  const { rows } = await run(url, `EXPLAIN (ANALYZE, FORMAT JSON)
    SELECT j.id FROM jobs j
    WHERE (j.expires_at <= now() OR j.status IN ('cancelled', 'expired'))
      AND EXISTS (SELECT 1 FROM result_pages r WHERE r.job_id = j.id)
    LIMIT 100`)
  const plan = (rows[0] as { 'QUERY PLAN': Array<{ 'Execution Time': number }> })['QUERY PLAN'][0]
  return plan?.['Execution Time'] ?? NaN
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

export async function sweepAtScale (serverUrl: string, s: SweepSettings, log: (m: string) => void): Promise<Line[]> {
  const history = await createDatabase(serverUrl, 'bench_sweep_history')
  const empty = await createDatabase(serverUrl, 'bench_sweep_empty')
  try {
    log(`sweep: seeding ${s.historicJobs.toLocaleString('en-US')} historic jobs and ${s.liveRows.toLocaleString('en-US')} live records`)
    await seedHistory(history, s)
    for (const url of [history, empty]) await run(url, 'VACUUM ANALYZE')
    const withHistory: number[] = []
    const baseline: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      baseline.push((await timedSweep(empty)).seconds)
      withHistory.push((await timedSweep(history)).seconds)
      log(`sweep round ${i + 1}: empty history ${seconds(baseline[i]!)}, with history ${seconds(withHistory[i]!)}`)
    }
    const former = await formerStatementMs(history)
    const g = median(withHistory)
    const b = median(baseline)
    const ratio = g / b
    return [{
      id: '8',
      what: `Sweep with ${s.historicJobs.toLocaleString('en-US')} historic jobs, ${s.liveRows.toLocaleString('en-US')} live records`,
      gateway: seconds(g),
      baseline: `${seconds(b)} (same sweep, empty history)`,
      ratio: times(ratio),
      target: '≤ 1.5× empty history',
      pass: ratio <= 1.5,
      data: {
        ...s,
        dueJobs: DUE_JOBS,
        rowsPerDueJob: ROWS_PER_DUE_JOB,
        liveJobs: LIVE_JOBS,
        withHistorySeconds: withHistory,
        baselineSeconds: baseline,
        formerStatementMs: former,
      },
      note: `each sweep erased ${DUE_JOBS} jobs and deleted ${(DUE_JOBS * ROWS_PER_DUE_JOB).toLocaleString('en-US')} records (${DUE_JOBS} pages); ` +
        `the former "which jobs still hold rows" statement took ${former.toFixed(0)} ms on this history, once per 100 jobs of every sweep`,
    }]
  } finally {
    await withConnection(serverUrl, async c => {
      await c.query('DROP DATABASE IF EXISTS "bench_sweep_history" WITH (FORCE)')
      await c.query('DROP DATABASE IF EXISTS "bench_sweep_empty" WITH (FORCE)')
    })
  }
}
