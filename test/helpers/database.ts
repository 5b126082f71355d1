/**
 * A fresh, migrated database per test file. The server is `TEST_DATABASE_URL` (set by scripts/test.ts, which
 * starts one embedded PostgreSQL for the whole run), else `DATABASE_URL`, else an embedded server of this file's
 * own. Migrations run once into a template database; each test file clones it (CREATE DATABASE … TEMPLATE).
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import tap from 'tap'
import { pino } from 'pino'
import { startEmbeddedPostgres } from '../../src/db/embedded.js'
import { applyMigrations } from '../../src/db/migrate.js'
import { withConnection } from '../../src/db/sql/sql.js'
import { readMigrations } from '../../src/db/schema-engine.js'

interface Teardown { teardown (fn: () => unknown): void }

const quiet = pino({ level: 'silent' })
let ownServer: Promise<string> | null = null

/** The PostgreSQL server tests run on (TEST_DATABASE_URL, else DATABASE_URL, else an embedded one of this file's own). */
export async function serverUrl (): Promise<string> {
  const url = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL
  if (url !== undefined && url !== '') return url
  ownServer ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bg-test-pg-'))
    const server = await startEmbeddedPostgres({ dataDir: dir, log: quiet })
    // The server's child process would keep this test process alive: stop it when the file's root test ends.
    tap.teardown(async () => {
      await server.stop()
      await rm(dir, { recursive: true, force: true })
    })
    return server.url
  })()
  return ownServer
}

function withDatabase (url: string, name: string): string {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

/** One query on a connection of its own; its rows. */
export async function sql<T extends pg.QueryResultRow> (url: string, text: string, values: unknown[] = []): Promise<T[]> {
  return withConnection(url, async client => (await client.query<T>(text, values)).rows)
}

/** The template for the current migrations, created once per server (guarded by an advisory lock). */
async function templateFor (url: string): Promise<string> {
  const migrations = await readMigrations()
  const hash = createHash('sha256').update(JSON.stringify(migrations)).digest('hex').slice(0, 12)
  const name = `bg_template_${hash}`
  await withConnection(url, async client => {
    await client.query('SELECT pg_advisory_lock(74201)')
    try {
      const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
      if (exists.rowCount === 0) {
        // A half-built template of an earlier, failed run is worthless: start it again.
        await client.query(`DROP DATABASE IF EXISTS "${name}_tmp" WITH (FORCE)`)
        await client.query(`CREATE DATABASE "${name}_tmp"`)
        await applyMigrations(withDatabase(url, `${name}_tmp`), quiet)
        await client.query(`ALTER DATABASE "${name}_tmp" RENAME TO "${name}"`)
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock(74201)')
    }
  })
  return name
}

/** A new migrated database for this test; dropped at teardown. Returns its URL. */
export async function testDatabase (t: Teardown): Promise<string> {
  const url = await serverUrl()
  const template = await templateFor(url)
  const name = `bg_test_${randomBytes(6).toString('hex')}`
  await withConnection(url, client => client.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`))
  t.teardown(() => withConnection(url, client => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)))
  return withDatabase(url, name)
}

/** A new database without any migration (for migration tests); dropped at teardown. Returns its URL. */
export async function emptyDatabase (t: Teardown): Promise<string> {
  const url = await serverUrl()
  const name = `bg_empty_${randomBytes(6).toString('hex')}`
  await withConnection(url, client => client.query(`CREATE DATABASE "${name}"`))
  t.teardown(() => withConnection(url, client => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)))
  return withDatabase(url, name)
}
