/**
 * A job's stored results as tests set them up and look at them: pages written by the gateway's own insert (so a
 * fixture is exactly what a job would have stored), and every stored record read back in order, straight from
 * result_pages (one row per page or part: records side by side, `ends` says where each ends, the text compressed or
 * not as `codec` says).
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { CODEC_PLAIN, unpackBody } from '../../src/db/sql/body-codec.js'
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

/**
 * `length` random printable ASCII characters, none a quote or backslash: about 6.5 bits of entropy a byte, which
 * deflate cannot shrink by the quarter the gateway asks of it, so such records are stored as they are.
 */
export function randomText (length: number): string {
  const chars = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).filter(c => c !== '"' && c !== '\\')
  return Array.from(randomBytes(length), b => chars[b % chars.length]).join('')
}

/** A count of stored records, for a test's own WHERE on result_pages after it (`… WHERE job_id <> $1`). */
export const STORED_COUNT = 'SELECT coalesce(sum(count), 0)::int AS n FROM result_pages'

interface PageRow { page: number, first: number, ends: number[], codec: number, bytes: number, body: Buffer }

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
  const rows = await rowsOf<PageRow>(db, 'SELECT page, first, ends, codec, bytes, body FROM result_pages WHERE job_id = $1 ORDER BY page, first', [jobId])
  const out: Array<{ page: number, position: number, record: string }> = []
  for (const row of rows) {
    const text = row.codec === CODEC_PLAIN ? row.body : await unpackBody(row.body, row.bytes)
    let start = 0
    row.ends.forEach((end, i) => {
      out.push({ page: row.page, position: row.first + i, record: text.toString('utf8', start, end) })
      start = end + 1
    })
  }
  return out
}

/** Every stored record of the job, in order. */
export async function storedRecords (db: Db, jobId: string): Promise<string[]> {
  return (await storedRows(db, jobId)).map(r => r.record)
}
