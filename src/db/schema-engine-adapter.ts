/**
 * The driver adapter the wasm schema engine talks to Postgres through: adapter-pg (made for the query
 * engine), repaired where the schema engine's work trips it (adapter-pg 7.10.1, engine 8.1.0-2):
 * shadow databases, migration scripts containing ";" in comments or bodies, and "char" catalog columns.
 */
import { randomUUID } from 'node:crypto'
import { PrismaPg } from '@prisma/adapter-pg'
import { ColumnTypeEnum, type SqlDriverAdapter, type SqlMigrationAwareDriverAdapterFactory, type SqlQuery, type SqlResultSet } from '@prisma/driver-adapter-utils'
import pg from 'pg'

/** An adapter factory for the engine plus the means to close everything it opened. */
export interface EngineAdapter {
  factory: SqlMigrationAwareDriverAdapterFactory
  close(): Promise<void>
}

/**
 * Builds the engine's adapter factory. Pass discrete fields (host, database, …), not a connectionString,
 * if the engine will need a shadow database (a `migrations` diff source).
 */
export function engineAdapter (connection: pg.PoolConfig): EngineAdapter {
  const pool = new pg.Pool({ ...connection, max: 2 })
  pool.on('error', () => {}) // an idle connection the server dropped: the next query opens another
  const shadows = new ShadowDatabases(connection)
  const main = new PrismaPg(pool) // our own pool, so close() can end it
  return {
    factory: {
      provider: main.provider,
      adapterName: main.adapterName,
      connect: async () => forSchemaEngine(await main.connect()),
      connectToShadowDb: () => shadows.create(),
    },
    close: async () => { await Promise.all([pool.end(), shadows.dropAll()]) },
  }
}

/**
 * Scratch databases the engine replays migrations into. adapter-pg's own connectToShadowDb cannot serve:
 * it builds the shadow pool from `{ ...config, database }`, which a connectionString silently overrides
 * (the "shadow" is then the main database) and which loses the password pg-pool hides in `pool.options`;
 * it also drops the database while its own connections are still open.
 */
class ShadowDatabases {
  private readonly open = new Map<string, pg.Pool>()

  constructor (private readonly connection: pg.PoolConfig) {}

  async create (): Promise<SqlDriverAdapter> {
    if (this.connection.connectionString) throw new Error('a shadow database needs discrete connection fields, not a connectionString')
    const database = `prisma_migrate_shadow_db_${randomUUID()}`
    await this.admin(`CREATE DATABASE "${database}"`)
    const pool = new pg.Pool({ ...this.connection, database, max: 2 })
    pool.on('error', () => {}) // as for the main pool
    this.open.set(database, pool)
    const adapter = forSchemaEngine(await new PrismaPg(pool).connect())
    const dispose = adapter.dispose.bind(adapter)
    adapter.dispose = async () => {
      await dispose()
      await this.drop(database)
    }
    return adapter
  }

  /** Drops what the engine did not dispose of itself (after an error, say). */
  async dropAll (): Promise<void> {
    await Promise.all([...this.open.keys()].map((database) => this.drop(database)))
  }

  private async drop (database: string): Promise<void> {
    const pool = this.open.get(database)
    if (!pool) return
    this.open.delete(database)
    await pool.end()
    await this.admin(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)
  }

  private async admin (sql: string): Promise<void> {
    const client = new pg.Client(this.connection)
    await client.connect()
    try {
      await client.query(sql)
    } finally {
      await client.end()
    }
  }
}

type PgResult = { fields: { dataTypeID: number }[] }
type PgQueryable = { queryRaw(query: SqlQuery): Promise<SqlResultSet>; performIO(query: SqlQuery): Promise<PgResult> }
const CHAR_OID = 18 // Postgres' one-byte "char", the type of catalog columns such as pg_constraint.contype
const TEXT_OID = 25

/** adapter-pg's adapter with the two repairs below: whole migration scripts, and "char" columns. */
function forSchemaEngine<T extends SqlDriverAdapter> (adapter: T): T {
  wholeScripts(adapter)
  retypeCharColumns(adapter)
  const startTransaction = adapter.startTransaction.bind(adapter)
  adapter.startTransaction = async (isolationLevel) => retypeCharColumns(await startTransaction(isolationLevel))
  return adapter
}

/**
 * adapter-pg's executeScript splits a migration on every ";" (inside comments, string literals and
 * $$-bodies too) and runs the pieces one by one, outside any transaction. The native engine sends the
 * script as one simple-protocol query, which Postgres runs as one implicit transaction: do the same, so a
 * migration applies whole or not at all. pg uses the simple protocol for a query without parameters.
 */
function wholeScripts (adapter: SqlDriverAdapter): void {
  const pgAdapter = adapter as unknown as { underlyingDriver(): pg.Pool; onError(error: unknown): never }
  adapter.executeScript = async (script) => {
    try {
      await pgAdapter.underlyingDriver().query(script)
    } catch (error) {
      pgAdapter.onError(error) // adapter-pg's own mapping into the error the engine understands
    }
  }
}

/**
 * Introspection (a `migrations` diff runs it on the shadow database) reads catalog columns of type
 * "char". adapter-pg 7.10 has no mapping for that type ("Column type 'char' could not be deserialized"),
 * and the engine insists on reading them as Character, not Text (it panics otherwise). pg already hands
 * the values over as strings, so: announce such columns as text to adapter-pg, then retype them as
 * Character in its result. The query object links the two steps of one call, also under concurrency.
 * Relies on adapter-pg's private `performIO`; if that changes, the original error comes back, nothing worse.
 */
function retypeCharColumns<T extends object> (target: T): T {
  const queryable = target as unknown as PgQueryable
  if (typeof queryable.performIO !== 'function') return target
  const charColumns = new WeakMap<SqlQuery, number[]>()
  const performIO = queryable.performIO.bind(target)
  const queryRaw = queryable.queryRaw.bind(target)
  queryable.performIO = async (query) => {
    const result = await performIO(query)
    const indexes = result.fields.flatMap((field, i) => (field.dataTypeID === CHAR_OID ? [i] : []))
    for (const i of indexes) result.fields[i]!.dataTypeID = TEXT_OID
    if (indexes.length > 0) charColumns.set(query, indexes)
    return result
  }
  queryable.queryRaw = async (query) => {
    const result = await queryRaw(query)
    for (const i of charColumns.get(query) ?? []) result.columnTypes[i] = ColumnTypeEnum.Character
    return result
  }
  return target
}
