// Migrations through the wasm schema engine, the readiness check, and the Prisma client on top.
// The server is the tests' own (test/helpers/database.ts); each test makes and drops its own database there.
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { Prisma } from '../../src/generated/prisma/client.js'
import { applyMigrations, migrationsStatus } from '../../src/db/migrate.js'
import { createPrisma } from '../../src/db/prisma.js'
import { discreteConnection, migrationsDir, NO_FILTER, openSchemaEngine, readMigrations, schemaPath } from '../../src/db/schema-engine.js'
import { emptyDatabase, serverUrl, sql } from '../helpers/database.js'

const log = { debug () {}, info () {}, warn () {}, error () {} }

const server = await serverUrl()
const onDisk = (await readMigrations()).migrationDirectories.map((m) => m.path)

t.test('applies the migrations once, as prisma migrate deploy records them', async (t) => {
  t.ok(onDisk.length > 0, 'prisma/migrations has migrations')
  const url = await emptyDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  t.teardown(() => pool.end())
  t.same(await migrationsStatus(pool), { upToDate: false, pending: onDisk }, 'an untouched database is not ready')

  t.same(await applyMigrations(url, log), onDisk)
  const tables = await sql<{ table_name: string }>(url, 'SELECT table_name FROM information_schema.tables WHERE table_schema = \'public\' ORDER BY 1')
  t.same(tables.map((r) => r.table_name), ['_prisma_migrations', 'idempotency_keys', 'jobs', 'result_pages',
    'upstream_budget_grants', 'upstream_budget_pauses', 'upstream_budget_waiters', 'upstream_credentials', 'webhook_deliveries'])
  const [index] = await sql<{ indexdef: string }>(url, 'SELECT indexdef FROM pg_indexes WHERE indexname = \'jobs_inflight_dedupe\'')
  t.match(index?.indexdef, /UNIQUE INDEX .* WHERE .*payload IS NULL/, 'the hand-written partial index is there')

  const rows = await sql<{ migration_name: string; checksum: string; applied_steps_count: number }>(
    url,
    'SELECT migration_name, checksum, applied_steps_count FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY 1'
  )
  const sha256 = async (name: string) => createHash('sha256').update(await readFile(join(migrationsDir, name, 'migration.sql'))).digest('hex')
  const checksums = await Promise.all(onDisk.map(sha256))
  t.same(rows, onDisk.map((name, i) => ({ migration_name: name, checksum: checksums[i], applied_steps_count: 1 })))

  t.same(await applyMigrations(url, log), [], 'a second run applies nothing')
  t.same(await migrationsStatus(pool), { upToDate: true, pending: [] })
})

t.test('two gateways starting together apply each migration once', async (t) => {
  const url = await emptyDatabase(t)
  const results = await Promise.all([applyMigrations(url, log), applyMigrations(url, log)])
  t.same(results.flat().sort(), onDisk, 'one applied them all, the other waited and found nothing to do')
  const [count] = await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM _prisma_migrations')
  t.equal(count?.n, onDisk.length)
})

/** A migrations folder of its own for a test: name → SQL. */
async function migrationsFolder (t: Test, migrations: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bg-migrations-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const [name, text] of Object.entries(migrations)) {
    await mkdir(join(dir, name))
    await writeFile(join(dir, name, 'migration.sql'), text)
  }
  return dir
}

t.test('a migration runs whole: semicolons in comments and bodies, and all or nothing', async (t) => {
  const url = await emptyDatabase(t)
  const dir = await migrationsFolder(t, {
    '20260101000000_one': `-- a comment; with a semicolon
CREATE TABLE one (note text DEFAULT 'a;b');
DO $$ BEGIN PERFORM 1; END $$;
`,
    '20260102000000_two': `CREATE TABLE two (id int);
SELECT 1 / 0;
`,
  })
  await t.rejects(applyMigrations(url, log, dir), /division by zero/)
  const tables = await sql<{ table_name: string }>(url, 'SELECT table_name FROM information_schema.tables WHERE table_name IN (\'one\', \'two\')')
  t.same(tables, [{ table_name: 'one' }], 'the first applied; of the failed one nothing remains')
  const [failed] = await sql<{ finished: boolean }>(
    url,
    'SELECT finished_at IS NOT NULL AS finished FROM _prisma_migrations WHERE migration_name = \'20260102000000_two\''
  )
  t.same(failed, { finished: false }, 'recorded as failed, as prisma migrate deploy does')
  await t.rejects(applyMigrations(url, log, dir), /failed migrations/, 'and it blocks later runs until resolved')
})

t.test('prisma/migrations matches schema.prisma (a diff through a shadow database is empty)', async (t) => {
  const { engine, close } = await openSchemaEngine(discreteConnection(server), log)
  t.teardown(close)
  const { stdout } = await engine.diff({
    from: { tag: 'migrations', ...(await readMigrations()) },
    to: { tag: 'schemaDatamodel', files: [{ path: schemaPath, content: await readFile(schemaPath, 'utf8') }] },
    script: false,
    exitCode: null,
    filters: NO_FILTER,
  })
  t.match(stdout, /No difference detected/, 'run `npm run db:diff -- <name>` after changing schema.prisma')
  const leftovers = await sql(server, 'SELECT datname FROM pg_database WHERE datname LIKE \'prisma_migrate_shadow_db_%\'')
  t.same(leftovers, [], 'the shadow database is dropped')
})

t.test('a failing connection is reported, not hung on', async (t) => {
  await t.rejects(applyMigrations('postgresql://postgres:postgres@127.0.0.1:1/nowhere', log), { code: 'ECONNREFUSED' })
})

t.test('the Prisma client works through adapter-pg on the migrated schema', async (t) => {
  const url = await emptyDatabase(t)
  await applyMigrations(url, log)
  const prisma = createPrisma(url)
  t.teardown(() => prisma.$disconnect())
  t.same(await migrationsStatus(prisma), { upToDate: true, pending: [] }, 'readiness also through Prisma')

  const read = { clientId: 'alpha', upstream: 'ocl', resource: 'concepts', params: { q: 'x' }, requestHash: 'h1' }
  const job = await prisma.job.create({ data: read })
  t.equal(job.status, 'queued')
  const text = '{"n":0}\n{"n":1}\n'
  await prisma.resultPage.create({
    data: { jobId: job.id, page: 0, first: 0, count: 2, plain: true, ends: [7, 15], codec: 0, bytes: text.length, body: Buffer.from(text) }
  })
  const found = await prisma.job.findUniqueOrThrow({ where: { id: job.id }, include: { results: { orderBy: { first: 'asc' } } } })
  t.same(found.results.map((r) => [r.count, r.ends, r.codec, r.bytes, Buffer.from(r.body).toString()]), [[2, [7, 15], 0, text.length, text]])

  const duplicate = await prisma.job.create({ data: read }).catch((err: unknown) => err)
  t.ok(duplicate instanceof Prisma.PrismaClientKnownRequestError && duplicate.code === 'P2002', 'a second in-flight read job is refused')
  await prisma.job.create({ data: { ...read, payload: { op: 'write' } } })
  await prisma.job.update({ where: { id: job.id }, data: { status: 'completed' } })
  await prisma.job.create({ data: read })
  t.equal(await prisma.job.count(), 3, 'writes, and reads once the first is done, are not deduplicated')
})
