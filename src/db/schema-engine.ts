/**
 * Prisma's schema engine (the one behind `prisma migrate`) as WebAssembly, so migrations need no native
 * binary download. Also where the project's `prisma/` folder is found, from `src/` (tsx) or `dist/`.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils'
import type { MigrationList, SchemaEngine, SchemaFilter } from '@prisma/schema-engine-wasm/schema_engine_bg'
import pg from 'pg'
import type { DbLogger } from './db-logger.js'
import { engineAdapter } from './schema-engine-adapter.js'
import { engineClosed, engineOpened, loadSchemaEngineWasm } from './schema-engine-wasm.js'

/** No tables or enums are managed outside Prisma. */
export const NO_FILTER: SchemaFilter = { externalTables: [], externalEnums: [] }

/** The directory holding package.json: the same from `src/db` and `dist/db`. */
export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`)
    dir = parent
  }
  return dir
})()

/** `prisma/migrations` of this package. */
export const migrationsDir: string = join(packageRoot, 'prisma', 'migrations')

/** `prisma/schema.prisma` of this package. */
export const schemaPath: string = join(packageRoot, 'prisma', 'schema.prisma')

/** Reads the migrations folder the way the Prisma CLI does (sorted by folder name, lock file optional). */
export async function readMigrations (dir: string = migrationsDir): Promise<MigrationList> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  const folders = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort()
  return {
    baseDir: dir,
    lockfile: { path: 'migration_lock.toml', content: await readFile(join(dir, 'migration_lock.toml'), 'utf8').catch(() => null) },
    shadowDbInitScript: '',
    migrationDirectories: await Promise.all(
      folders.map(async (path) => ({
        path,
        migrationFile: {
          path: 'migration.sql',
          content: await readFile(join(dir, path, 'migration.sql'), 'utf8').then(
            (value) => ({ tag: 'ok' as const, value }),
            (err: Error) => ({ tag: 'error' as const, value: err.message })
          ),
        },
      }))
    ),
  }
}

/**
 * A URL's host, port, user, password and database as separate fields, the form a shadow database needs
 * (see schema-engine-adapter.ts). Query parameters such as sslmode are not carried over.
 */
export function discreteConnection (databaseUrl: string): pg.PoolConfig {
  const url = new URL(databaseUrl)
  return {
    host: url.hostname,
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)),
  }
}

/** An engine connected to one database; `close()` frees the wasm instance and ends its connections. */
export interface OpenSchemaEngine {
  engine: SchemaEngine
  close(): Promise<void>
}

/**
 * Opens the engine on a database. Give discrete fields (host, database, …) rather than a connectionString
 * when the engine needs a shadow database (a `migrations` diff source): see schema-engine-adapter.ts.
 */
export async function openSchemaEngine (connection: pg.PoolConfig, log: DbLogger): Promise<OpenSchemaEngine> {
  const bindings = await loadSchemaEngineWasm()
  const { factory, close } = engineAdapter(connection)
  engineOpened(log)
  // A bare adapter fails inside the engine, which calls its methods unbound.
  const adapter = bindMigrationAwareSqlAdapterFactory(factory)
  const onLog = (line: string) => log.debug({ schemaEngine: line }, 'schema engine')
  // No datamodel up front: each command that needs a schema is given one.
  const engine = await bindings.SchemaEngine.new({ datamodels: undefined }, onLog, adapter).catch(async (err: unknown) => {
    engineClosed()
    await close()
    throw err
  })
  return {
    engine: explainingErrors(engine, adapter.errorRegistry),
    async close () {
      engine.free()
      engineClosed()
      await close()
    },
  }
}

/**
 * The engine reports a failure inside the driver adapter only as "External error id#N"; the real error
 * (connection refused, SQL error, …) waits in the adapter's registry under N. Put it into the message.
 */
function explainingErrors (engine: SchemaEngine, registry: { consumeError(id: number): { error: unknown } | undefined }): SchemaEngine {
  const explain = (err: unknown) => {
    const id = /External error id#(\d+)/.exec(String((err as Error)?.message))?.[1]
    const external = id === undefined ? undefined : registry.consumeError(Number(id))?.error
    if (external === undefined) return err
    const detail = (external as { message?: string; kind?: string }).message ?? (external as { kind?: string }).kind
    return new Error(`schema engine: ${detail ?? JSON.stringify(external)}`, { cause: external })
  }
  return new Proxy(engine, {
    get (target, prop) {
      const value: unknown = Reflect.get(target, prop, target)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        const result: unknown = value.apply(target, args)
        return result instanceof Promise ? result.catch((err: unknown) => Promise.reject(explain(err))) : result
      }
    },
  })
}
