/**
 * The PostgreSQL a bench run uses: a scratch database on DATABASE_URL's server (created and dropped by the run,
 * so the role needs CREATEDB, as for `npm test`), or an embedded server in a temporary folder.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { startEmbeddedPostgres } from '../src/db/embedded.js'
import { withConnection } from '../src/db/sql/sql.js'

/** A database for one run; `close()` drops it (or stops the embedded server). */
export interface BenchDatabase {
  /** Connection string of the scratch database. */
  url: string
  /** What it runs on, for the report. */
  source: 'embedded' | 'DATABASE_URL'
  close (): Promise<void>
}

function withDatabase (url: string, name: string): string {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

async function admin (url: string, statement: string): Promise<void> {
  await withConnection(url, client => client.query(statement))
}

export async function openDatabase (): Promise<BenchDatabase> {
  const given = process.env.DATABASE_URL
  if (given !== undefined && given !== '') {
    const name = `bulk_gateway_bench_${randomBytes(5).toString('hex')}`
    await admin(given, `CREATE DATABASE "${name}"`)
    return { url: withDatabase(given, name), source: 'DATABASE_URL', close: () => admin(given, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) }
  }
  const dir = await mkdtemp(join(tmpdir(), 'bulk-gateway-bench-'))
  const server = await startEmbeddedPostgres({ dataDir: dir, log: pino({ level: 'warn' }) })
  return {
    url: server.url,
    source: 'embedded',
    async close () {
      await server.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}
