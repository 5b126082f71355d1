/**
 * A job's stored results as tests set them up and look at them: pages written by the gateway's own insert (so a
 * fixture is exactly what a job would have stored), and every stored record read back in order, straight from
 * result_pages (one row per page or part: records side by side, `ends` says where each ends).
 */
import pg from 'pg'
import { insertRecords } from '../../src/db/sql/results.js'

type Db = pg.Pool | pg.Client | string

/** Stores `records` as page `page` of the job, as a job's savePage does (a page stored before is kept). */
export async function storePage (db: Db, jobId: string, page: number, records: readonly string[]): Promise<number> {
  if (db instanceof pg.Client) return await insertRecords(db as pg.PoolClient, jobId, page, records)
  const pool = typeof db === 'string' ? new pg.Pool({ connectionString: db, max: 1 }) : db
  const client = await pool.connect()
  try {
    return await insertRecords(client, jobId, page, records)
  } finally {
    client.release()
    if (typeof db === 'string') await pool.end()
  }
}

/** Stores `records` in pages of `perPage` (pages 1, 2, …). */
export async function storePages (db: Db, jobId: string, records: readonly string[], perPage: number): Promise<void> {
  for (let i = 0; i * perPage < records.length; i++) await storePage(db, jobId, i + 1, records.slice(i * perPage, (i + 1) * perPage))
}

/** `count` records `{"i" : n, "pad" : "xx…"}` (PostgreSQL's json_build_object text) with `bytes` of padding each. */
export function paddedRecords (count: number, bytes: number): string[] {
  const pad = 'x'.repeat(bytes)
  return Array.from({ length: count }, (_, i) => `{"i" : ${i}, "pad" : "${pad}"}`)
}

/** A count of stored records, for a test's own WHERE on result_pages after it (`… WHERE job_id <> $1`). */
export const STORED_COUNT = 'SELECT coalesce(sum(count), 0)::int AS n FROM result_pages'

interface PageRow { page: number, first: number, ends: number[], body: Buffer }

/** The rows of one query, on a connection of its own when `db` is a URL. */
async function rowsOf<Row extends pg.QueryResultRow> (db: Db, text: string, values: unknown[]): Promise<Row[]> {
  if (typeof db !== 'string') return (await db.query<Row>(text, values)).rows
  const client = new pg.Client({ connectionString: db })
  await client.connect()
  try {
    return (await client.query<Row>(text, values)).rows
  } finally {
    await client.end()
  }
}

/** How many records the job has stored. */
export async function storedCount (db: Db, jobId: string): Promise<number> {
  const [row] = await rowsOf<{ n: number }>(db, `${STORED_COUNT} WHERE job_id = $1`, [jobId])
  return row?.n ?? 0
}

/** Every stored record of the job, in (page, position) order, with where it is stored. */
export async function storedRows (db: Db, jobId: string): Promise<Array<{ page: number, position: number, record: string }>> {
  const rows = await rowsOf<PageRow>(db, 'SELECT page, first, ends, convert_to(body, \'UTF8\') AS body FROM result_pages WHERE job_id = $1 ORDER BY page, first', [jobId])
  const out: Array<{ page: number, position: number, record: string }> = []
  for (const row of rows) {
    let start = 0
    row.ends.forEach((end, i) => {
      out.push({ page: row.page, position: row.first + i, record: row.body.toString('utf8', start, end) })
      start = end + 1
    })
  }
  return out
}

/** Every stored record of the job, in order. */
export async function storedRecords (db: Db, jobId: string): Promise<string[]> {
  return (await storedRows(db, jobId)).map(r => r.record)
}
