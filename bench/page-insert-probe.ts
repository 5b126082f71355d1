/**
 * What storing one page costs PostgreSQL, as the text-page release stored it and as the gateway stores it now: a
 * page of 1000 DrChrono `line_items` records (the records of bench line 2a) inserted as a `text` value that TOAST
 * compresses (pglz, or lz4 where the server has it), against the same text deflated by the gateway
 * (db/sql/body-codec.ts) into a `bytea` column stored as it comes (STORAGE EXTERNAL). Rounds alternate between the
 * two; the figures are the inserting backend's own CPU (from /proc, so only for a server on this machine), the
 * gateway's time to deflate, and the bytes stored.
 *
 * `npx tsx bench/page-insert-probe.ts` (PROBE_PAGES, 200 by default, pages per layout; DATABASE_URL as for the bench).
 */
import pg from 'pg'
import { packBody } from '../src/db/sql/body-codec.js'
import { pageParts } from '../src/db/sql/results.js'
import { expectedRecords } from '../src/upstreams/drchrono/simulator/index.js'
import { processCpu } from './cpu.js'
import { openDatabase } from './database.js'

const pages = Number(process.env.PROBE_PAGES ?? 200)
if (!Number.isInteger(pages) || pages < 10) throw new Error('PROBE_PAGES must be an integer of 10 or more')

const records = expectedRecords('line_items', { page_size: 1000 }, { seed: 7, recordCount: { line_items: 1000 } }).slice(0, 1000).map(r => JSON.stringify(r))
const [part] = pageParts(records)
if (part === undefined) throw new Error('no records')
const text = Buffer.from(part.body)

const db = await openDatabase()
const client = new pg.Client({ connectionString: db.url })
await client.connect()
try {
  const pid = Number((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid)
  await client.query(`CREATE TABLE probe_text (id serial PRIMARY KEY, body text NOT NULL);
    CREATE TABLE probe_deflated (id serial PRIMARY KEY, body bytea NOT NULL);
    ALTER TABLE probe_deflated ALTER COLUMN body SET STORAGE EXTERNAL`)
  const totals = { text: { cpu: 0, ms: 0 }, deflated: { cpu: 0, ms: 0, deflateMs: 0 } }
  const rounds = 10
  for (let round = 0; round < rounds; round++) {
    for (const layout of round % 2 === 0 ? ['text', 'deflated'] as const : ['deflated', 'text'] as const) {
      const cpu0 = processCpu(pid)
      const started = performance.now()
      for (let i = 0; i < pages / rounds; i++) {
        if (layout === 'text') {
          // As insertRecords sent it before: the text's bytes as a binary parameter of a text column.
          await client.query({ text: 'INSERT INTO probe_text (body) VALUES ($1)', values: [text] })
        } else {
          const t0 = performance.now()
          const { body } = await packBody(text)
          totals.deflated.deflateMs += performance.now() - t0
          await client.query({ text: 'INSERT INTO probe_deflated (body) VALUES ($1)', values: [body] })
        }
      }
      totals[layout].ms += performance.now() - started
      totals[layout].cpu += processCpu(pid) - cpu0
    }
  }
  const size = async (table: string): Promise<number> =>
    Number((await client.query<{ n: string }>(`SELECT pg_total_relation_size('${table}') AS n`)).rows[0]?.n)
  const perPage = (x: number): string => (x / pages).toFixed(2)
  console.log(`a page of ${records.length} records, ${text.length} bytes of text; ${pages} pages per layout on ${db.source} PostgreSQL`)
  console.log(`text (TOAST compresses):      PostgreSQL CPU ${perPage(totals.text.cpu * 1000)} ms a page, wall ${perPage(totals.text.ms)} ms, ` +
    `table ${(await size('probe_text') / 1e6).toFixed(1)} MB`)
  console.log(`deflated by the gateway:      PostgreSQL CPU ${perPage(totals.deflated.cpu * 1000)} ms a page, wall ${perPage(totals.deflated.ms)} ms ` +
    `(deflate ${perPage(totals.deflated.deflateMs)} ms of it), table ${(await size('probe_deflated') / 1e6).toFixed(1)} MB`)
} finally {
  await client.end()
  await db.close()
}
