/**
 * Applies `prisma/migrations` at start-up, recording them in `_prisma_migrations` exactly as
 * `prisma migrate deploy` does, so either tool can be used on the same database.
 */
import pg from 'pg'
import type { DbLogger } from './db-logger.js'
import { migrationsDir, NO_FILTER, openSchemaEngine, readMigrations } from './schema-engine.js'

/**
 * Serialises gateways that start together on one database. Prisma's engine takes its own lock
 * (key 72707369) but gives up after 10 s with an error; this one waits as long as the other gateway
 * migrates, and must differ from the engine's, which is taken on another connection while ours is held.
 */
const MIGRATION_LOCK_KEY = 4_186_253_117

/**
 * Applies the pending migrations and returns their folder names (empty when the database was up to date).
 * Each migration runs as one transaction: one that fails leaves no trace but its failed row, which
 * blocks later runs until resolved, as with `prisma migrate deploy`.
 */
export async function applyMigrations (databaseUrl: string, log: DbLogger, dir: string = migrationsDir): Promise<string[]> {
  const migrations = await readMigrations(dir)
  const names = migrations.migrationDirectories.map((m) => m.path)
  const lock = new pg.Client({ connectionString: databaseUrl })
  lock.on('error', (err) => log.warn({ err: err.message }, 'migration lock connection lost'))
  await lock.connect()
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
    // Checked under the lock, so a gateway that waited for another one's migrations skips the wasm engine.
    if ((await pendingOf(lock, names)).length === 0) return []
    const { engine, close } = await openSchemaEngine({ connectionString: databaseUrl }, log)
    try {
      const { appliedMigrationNames } = await engine.applyMigrations({ migrationsList: migrations, filters: NO_FILTER })
      if (appliedMigrationNames.length > 0) log.info({ migrations: appliedMigrationNames }, 'applied database migrations')
      return appliedMigrationNames
    } finally {
      await close()
    }
  } finally {
    await lock.end() // ending the session releases the advisory lock, also after an error
  }
}

/** Whether the database has every migration folder that ships with this build. */
export interface MigrationsStatus {
  /** True when no migration is pending. */
  upToDate: boolean
  /** Folder names on disk without a finished, not rolled back row in `_prisma_migrations`. */
  pending: string[]
}

/** A pg Pool or Client, or a PrismaClient: whatever the caller already holds. */
export type Queryable =
  | { query(sql: string): Promise<{ rows: unknown[] }> }
  | { $queryRawUnsafe<T = unknown>(sql: string): PromiseLike<T> }

let shippedNames: Promise<string[]> | undefined

/**
 * The readiness check: two tiny queries (catalog, then `_prisma_migrations`), no engine. The folder
 * list is read once per process, since the migrations of a running build do not change.
 */
export async function migrationsStatus (db: Queryable): Promise<MigrationsStatus> {
  shippedNames ??= readMigrations().then((list) => list.migrationDirectories.map((m) => m.path))
  const pending = await pendingOf(db, await shippedNames)
  return { upToDate: pending.length === 0, pending }
}

async function pendingOf (db: Queryable, names: string[]): Promise<string[]> {
  // Checked first rather than caught: a failing query would abort the caller's transaction, if any.
  const [table] = await rowsOf<{ present: boolean }>(db, 'SELECT to_regclass(\'_prisma_migrations\') IS NOT NULL AS present')
  if (!table?.present) return names
  const rows = await rowsOf<{ migration_name: string }>(
    db,
    'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL'
  )
  const applied = new Set(rows.map((r) => r.migration_name))
  return names.filter((name) => !applied.has(name))
}

async function rowsOf<T> (db: Queryable, sql: string): Promise<T[]> {
  return '$queryRawUnsafe' in db ? await db.$queryRawUnsafe<T[]>(sql) : ((await db.query(sql)).rows as T[])
}
