/**
 * Upgrades of the results store: from one result row per record (job_results) to one row per stored page
 * (result_pages, 20261207160843_results_as_pages), and from pages of text to pages of bytes the gateway compresses
 * (20261208000000_result_bodies_deflate). In each, a database the earlier release wrote, with a completed job and a
 * running one, is migrated and served by this release. The migrations convert the stored records in place, pages and
 * positions unchanged, so the completed job reads byte for byte as before (pages, NDJSON, a cursor given out before
 * the upgrade) and the running job resumes after its last saved page and completes with exactly the upstream's
 * records, its new pages beside the converted one.
 */
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { applyMigrations } from '../../src/db/migrate.js'
import { migrationsDir } from '../../src/db/schema-engine.js'
import { encodeCursor } from '../../src/api/cursors.js'
import { pageParts } from '../../src/db/sql/results.js'
import { expectedRecords } from '../../src/upstreams/drchrono/simulator/index.js'
import { emptyDatabase, sql } from '../helpers/database.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const PAGES_MIGRATION = '20261207160843_results_as_pages'
const DEFLATE_MIGRATION = '20261208000000_result_bodies_deflate'
const quiet = pino({ level: 'silent' })

/** prisma/migrations up to the release that `first` came with. */
async function migrationsBefore (t: { teardown (fn: () => unknown): void }, first: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bg-old-migrations-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const entry of await readdir(migrationsDir)) {
    if (entry >= first) continue
    await cp(join(migrationsDir, entry), join(dir, entry), { recursive: true })
  }
  return dir
}

/** Stores records as the per-row release did: one job_results row each, at (page, position). */
async function rowPerRecord (url: string, jobId: string, page: number, records: string[]): Promise<void> {
  await sql(url, `INSERT INTO job_results (job_id, page, position, record)
    SELECT $1, $2, i - 1, r FROM unnest($3::text[]) WITH ORDINALITY AS u(r, i)`, [jobId, page, records])
}

/**
 * Stores records as the text-page release did: its insert, with the parts this release still cuts (pageParts is
 * unchanged): each part's text and ends as binary parameters, the text into a text column.
 */
async function textPages (url: string, jobId: string, page: number, records: string[]): Promise<void> {
  for (const part of pageParts(records)) {
    await sql(url, 'INSERT INTO result_pages (job_id, page, first, count, plain, ends, body) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [jobId, page, part.first, part.count, part.plain, part.ends, part.body])
  }
}

/** The releases upgraded from: the migration this release's store came with, how they stored a page, what is left. */
const releases = [
  {
    name: 'the per-row release',
    first: PAGES_MIGRATION,
    store: rowPerRecord,
    // The migration cut parts so that a part ends with the record that crosses 1 MiB.
    parts: [[1, 0, 3], [2, 0, 3], [2, 3, 1], [3, 0, 1]],
    async left (t: Test, url: string): Promise<void> {
      const [{ n }] = await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = \'job_results\'') as [{ n: number }]
      t.equal(n, 0, 'job_results is gone')
    }
  },
  {
    name: 'the text-page release',
    first: DEFLATE_MIGRATION,
    store: textPages,
    // That release cut parts before the record that would cross 1 MiB.
    parts: [[1, 0, 3], [2, 0, 2], [2, 2, 2], [3, 0, 1]],
    async left (t: Test, url: string): Promise<void> {
      const rows = await sql<{ codec: number, exact: boolean }>(url, 'SELECT DISTINCT codec, bytes = octet_length(body) AS exact FROM result_pages')
      t.same(rows, [{ codec: 0, exact: true }], 'the stored text is kept as it is, its length in bytes')
    }
  },
]

async function readPages (gw: TestGateway, id: string, limit: number, cursor: string | null = null): Promise<string[]> {
  const out: string[] = []
  do {
    const res = await gw.request(`/jobs/${id}/results?limit=${limit}${cursor !== null ? `&cursor=${cursor}` : ''}`)
    if (res.status !== 200) throw new Error(`results answered ${res.status}: ${await res.text()}`)
    const text = await res.text()
    // The records exactly as sent: cut out of the envelope by their own bytes, not re-serialised.
    const page = JSON.parse(text) as { data: unknown[], nextCursor: string | null }
    out.push(...page.data.map(r => JSON.stringify(r)))
    cursor = page.nextCursor
  } while (cursor !== null)
  return out
}

for (const release of releases) {
  t.test(`a database of ${release.name}: both jobs read exactly as before after the upgrade`, async t => {
    const recordCount = { appointments: 2345 }
    const sim = await startDrchrono(t, { recordCount })
    const url = await emptyDatabase(t)
    t.same(await applyMigrations(url, quiet, await migrationsBefore(t, release.first)), (await readdir(migrationsDir)).filter(m => m < release.first && !m.endsWith('.toml')), 'the earlier release\'s schema')

    // A completed job: records with line breaks, multi-byte text, an empty object, and a page over 1 MiB (split in parts).
    const big = JSON.stringify({ big: 'ü'.repeat(300_000) })
    const done: string[][] = [
      ['{"id":1,"name":"Zoë"}', '{\n  "pretty": true,\r\n  "n": 2\n}', '{}'],
      ['{"id":4,"city":"東京 🩺"}', big, big, '{"id":7}'],
      ['{"id":8,"note":"line\\nbreak"}'],
    ]
    const [completed] = await sql<{ id: string }>(url, `INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records,
        pages_done, pages_total, percent, started_at, finished_at, expires_at)
      VALUES (gen_random_uuid(), 'alpha', 'drchrono', 'patients', '{}', 'h-done', 'completed', $1, 3, 3, 100, now(), now(), now() + interval '1 hour')
      RETURNING id`, [done.flat().length])
    for (const [i, records] of done.entries()) await release.store(url, completed!.id, i + 1, records)

    // A running job of an old gateway that went away after saving page 1 of 3: its lease has run out.
    // Params as POST /jobs stores them: validated, with their defaults.
    const params = { page_size: 1000 }
    const expected = expectedRecords('appointments', params, { seed: 7, recordCount }).map(r => JSON.stringify(r))
    t.ok(expected.length > 2000 && expected.length <= 3000, `three pages of records (${expected.length})`)
    const [running] = await sql<{ id: string }>(url, `INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, checkpoint,
        records, pages_done, pages_total, attempts, lease_owner, lease_expires_at, started_at)
      VALUES (gen_random_uuid(), 'alpha', 'drchrono', 'appointments', $1, 'h-running', 'running', $2, 1000, 1, 3, 1, 'old-gateway',
        now() - interval '1 minute', now() - interval '2 minutes')
      RETURNING id`, [JSON.stringify(params), JSON.stringify({ pages: 3, count: expected.length, done: [1] })])
    await release.store(url, running!.id, 1, expected.slice(0, 1000))
    // A cursor the previous release gave out: after page 2, position 1 (its cursors were [page, position] too).
    const before = encodeCursor([2, 1])

    // The new release starts: it migrates, then serves.
    // This release's migrations from the earlier release's on.
    t.same(await applyMigrations(url, quiet), (await readdir(migrationsDir)).filter(m => m >= release.first && !m.endsWith('.toml')))
    await release.left(t, url)
    const gw = await startGateway(t, { databaseUrl: url, env: drchronoEnv(sim) })

    const flat = done.flat()
    const asJson = (r: string): string => JSON.stringify(JSON.parse(r))
    t.same(await readPages(gw, completed!.id, 2), flat.map(asJson), 'pages of 2 read every record in order')
    t.same(await readPages(gw, completed!.id, 2, before), flat.slice(5).map(asJson), 'a cursor from before the upgrade goes on where it was')
    const page = await (await gw.request(`/jobs/${completed!.id}/results?limit=3`)).text()
    t.equal(page, `{"data":[${flat.slice(0, 3).join(',')}],"nextCursor":"${encodeCursor([1, 2])}","total":${flat.length}}`, 'byte for byte, as the previous release served it')
    const ndjson = await (await gw.request(`/jobs/${completed!.id}/results`, { headers: { accept: 'application/x-ndjson' } })).text()
    t.equal(ndjson, flat.map(r => r.replace(/[\r\n]/g, ' ')).join('\n') + '\n', 'NDJSON: one line per record, as before')
    const parts = await sql<{ page: number, first: number, count: number }>(url, 'SELECT page, first, count FROM result_pages WHERE job_id = $1 ORDER BY page, first', [completed!.id])
    t.same(parts, release.parts.map(([page, first, count]) => ({ page, first, count })), 'a row per page, the page over 1 MiB in two parts, as stored')

    const finished = await waitForJob(gw, running!.id, { timeoutMs: 60_000 })
    t.equal(finished.status, 'completed', JSON.stringify(finished.error))
    t.equal(finished.progress.records, expected.length)
    t.same(await readPages(gw, running!.id, 1000), expected.map(asJson), 'the resumed job holds exactly the upstream\'s records')
    t.equal(sim.state.postsFor('appointments', 1), 0, 'page 1, stored before the upgrade, was not fetched again')
    t.equal(sim.state.postsFor('appointments', 2), 1)
    const codecs = await sql<{ page: number, codec: number }>(url, 'SELECT page, codec FROM result_pages WHERE job_id = $1 ORDER BY page', [running!.id])
    t.same(codecs, [{ page: 1, codec: 0 }, { page: 2, codec: 1 }, { page: 3, codec: 1 }], 'pages saved after the upgrade are compressed, the converted one is not')
  })
}
