/**
 * A tagged template for hand-written SQL: interpolated values become `$n` parameters, never text;
 * an interpolated `Sql` fragment is embedded as SQL (fragments are written here, never built from input).
 */
import pg from 'pg'

/** A query with its parameters, ready for `pg`. */
export class Sql {
  constructor (readonly strings: readonly string[], readonly values: readonly unknown[]) {}

  /** pg's `{ text, values }` with `$1…$n` placeholders. */
  toQuery (): { text: string, values: unknown[] } {
    const values: unknown[] = []
    let text = ''
    const append = (fragment: Sql): void => {
      fragment.strings.forEach((s, i) => {
        text += s
        if (i >= fragment.values.length) return
        const value = fragment.values[i]
        if (value instanceof Sql) append(value)
        else {
          values.push(value)
          text += `$${values.length}`
        }
      })
    }
    append(this)
    return { text, values }
  }
}

export function sql (strings: TemplateStringsArray, ...values: unknown[]): Sql {
  return new Sql(strings, values)
}

/** Anything that runs queries: the pool or one client inside a transaction. */
export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>

/** Runs a query and returns its rows. */
export async function query<Row extends pg.QueryResultRow> (db: Queryable, q: Sql): Promise<pg.QueryResult<Row>> {
  return db.query<Row>(q.toQuery())
}

/** Runs `fn` on a connection of its own (outside any pool), closed afterwards: admin work, tests, benchmarks. */
export async function withConnection<T> (connectionString: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** Runs `fn` inside one transaction on one client of the pool. */
export async function transaction<T> (pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  // A checked-out client has no pool listener: without this one, a connection lost mid-transaction (a database
  // restart) is an unhandled 'error' event that ends the process. The query in flight fails by itself.
  let lost: Error | undefined
  const onError = (err: Error): void => { lost = err }
  client.on('error', onError)
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.off('error', onError)
    // A broken connection is dropped, not handed to the next transaction.
    client.release(lost)
  }
}
