/**
 * PostgreSQL's own bulk paths, the baselines for ingest and read: `COPY … FROM STDIN` and `COPY (SELECT …) TO
 * STDOUT` over one pg connection (pg-copy-streams), timed from the statement to its last byte.
 */
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import pg from 'pg'
import { from as copyFrom, to as copyTo } from 'pg-copy-streams'
import { assertUuid } from '../src/db/sql/copy-format.js'
import { withConnection } from '../src/db/sql/sql.js'

/** COPY takes no parameters: a job id is checked to be a UUID before it is written into the statement. */
export function uuidLiteral (id: string): string {
  return `'${assertUuid(id)}'::uuid`
}

/** How a COPY went: rows, bytes (COPY TO only), seconds, and PostgreSQL CPU seconds when they can be read. */
export interface CopyResult { rows: number, bytes: number, seconds: number, postgresCpu: number | null }

/**
 * Options of a COPY: where COPY TO's chunks go, a reader of PostgreSQL's CPU seconds (see cpu.ts), and `binary` for
 * COPY TO in binary format (bytea as its bytes, not as hex; rows are then not counted).
 */
export interface CopyOptions { sink?: (chunk: Buffer) => void, postgresCpu?: (() => number) | null, binary?: boolean }

/** CPU is read on the COPY's own connection, so its backend's time is counted before it exits. */
async function timed (url: string, opts: CopyOptions, fn: (client: pg.Client) => Promise<{ rows: number, bytes: number }>): Promise<CopyResult> {
  return withConnection(url, async client => {
    const cpu0 = opts.postgresCpu?.() ?? NaN
    const started = performance.now()
    const { rows, bytes } = await fn(client)
    const seconds = (performance.now() - started) / 1000
    const cpu = opts.postgresCpu ? opts.postgresCpu() - cpu0 : null
    return { rows, bytes, seconds, postgresCpu: cpu }
  })
}

/** Runs `COPY (query) TO STDOUT`, handing each chunk to `opts.sink` (or dropping it), and times it. */
export async function copyOut (url: string, query: string, opts: CopyOptions = {}): Promise<CopyResult> {
  return timed(url, opts, async client => {
    let bytes = 0
    let rows = 0
    const stream = client.query(copyTo(`COPY (${query}) TO STDOUT${opts.binary === true ? ' (FORMAT binary)' : ''}`))
    await pipeline(stream, new Writable({
      write (chunk: Buffer, _enc, done) {
        bytes += chunk.length
        if (opts.binary !== true) for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) rows++
        opts.sink?.(chunk)
        done()
      },
    }))
    return { rows, bytes }
  })
}

/** Runs `COPY target FROM STDIN` with `chunks` (COPY text format) and times it. */
export async function copyIn (url: string, target: string, chunks: readonly Buffer[], opts: CopyOptions = {}): Promise<CopyResult> {
  return timed(url, opts, async client => {
    const stream = client.query(copyFrom(`COPY ${target} FROM STDIN`))
    await pipeline(Readable.from(chunks), stream)
    return { rows: stream.rowCount, bytes: chunks.reduce((n, c) => n + c.length, 0) }
  })
}

/** Runs one statement on its own connection. */
export async function run (url: string, statement: string, values: unknown[] = []): Promise<pg.QueryResult> {
  return withConnection(url, client => client.query(statement, values))
}
