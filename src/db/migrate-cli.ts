/**
 * `npm run db:migrate`: applies prisma/migrations to DATABASE_URL, or, when that is unset, to the embedded
 * server under DATA_DIR (default ./.data), which it starts and stops. Prints one line of what it did.
 */
import pino from 'pino'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded.js'
import { applyMigrations } from './migrate.js'

const log = pino({ level: process.env.LOG_LEVEL ?? 'warn' })
let embedded: EmbeddedPostgres | undefined
try {
  let url = process.env.DATABASE_URL
  if (!url) {
    embedded = await startEmbeddedPostgres({ dataDir: process.env.DATA_DIR ?? './.data', log })
    url = embedded.url
  }
  const applied = await applyMigrations(url, log)
  const where = embedded ? 'embedded database' : 'DATABASE_URL'
  console.log(
    applied.length > 0
      ? `applied ${applied.length} migration(s) to ${where}: ${applied.join(', ')}`
      : `${where} is up to date: no migration applied`
  )
} catch (err) {
  console.error(`migration failed: ${err instanceof Error ? err.message : String(err)}`)
  process.exitCode = 1
} finally {
  await embedded?.stop()
}
