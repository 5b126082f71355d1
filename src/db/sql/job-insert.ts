/**
 * Creating a job: the row and its Idempotency-Key row in one short transaction of plain statements (no
 * interactive Prisma transaction, whose 5 s timeout a 100 000-operation payload outran), counted against the
 * client's MAX_ACTIVE_JOBS_PER_CLIENT under an advisory lock on the client. The lock is what makes the count
 * race-safe across replicas: a second POST of the same client waits for the first to commit, and its count,
 * taken by a statement that starts after the lock is granted, sees the first one's job.
 *
 * A write job's row goes in by binary COPY, its payload sent in slices: as one bind parameter, node-postgres
 * copies a 36 MB payload twice into its message buffers, which held the event loop for over 100 ms each time.
 */
import { randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { COPY_SIGNATURE } from './copy-format.js'
import { jobFieldColumns } from './jobs.js'
import type { JobSummary } from '../../domain/job.js'
import { query, sql, transaction } from './sql.js'

/** A job to insert: what the client sent, as prepared by the route. */
export interface NewJob {
  clientId: string
  upstream: string
  resource: string
  params: Record<string, unknown>
  /** The write payload in jsonb's binary format (see PreparedJob), parsed by PostgreSQL; null for reads. */
  payloadJsonb: Uint8Array | null
  requestHash: string
  /** The completion callback's URL: its delivery becomes due when the job ends (callbacks.ts). Null for none. */
  callbackUrl: string | null
  /** The Idempotency-Key row's digests (idempotency.ts), or null without a key. */
  idempotency: { key: string, requestHash: string } | null
}

/** Inserted, or refused because the client already has `active` queued or running jobs. */
export type InsertJobResult = { job: JobSummary } | { active: number }

/**
 * Inserts the job unless its client has `maxActive` or more queued or running jobs (0: no limit). A unique
 * violation (an in-flight twin or the same Idempotency-Key, inserted by a concurrent request) is thrown as
 * PostgreSQL's 23505 for the caller to look the winner up.
 */
export async function insertJob (pool: pg.Pool, job: NewJob, maxActive: number): Promise<InsertJobResult> {
  return transaction(pool, async client => {
    if (maxActive > 0) {
      await query(client, sql`SELECT pg_advisory_xact_lock(hashtextextended(${`active-jobs:${job.clientId}`}, 0))`)
      const { rows: [row] } = await query<{ active: number }>(client, sql`
        SELECT count(*)::int AS active FROM jobs WHERE client_id = ${job.clientId} AND status IN ('queued', 'running')`)
      const active = row?.active ?? 0
      if (active >= maxActive) return { active }
    }
    const id = randomUUID()
    const callbackStatus = job.callbackUrl === null ? null : 'pending'
    if (job.payloadJsonb !== null) {
      await copyWriteJob(client, id, job, job.payloadJsonb)
      if (job.callbackUrl !== null) {
        await query(client, sql`UPDATE jobs SET callback_url = ${job.callbackUrl}, callback_status = 'pending' WHERE id = ${id}`)
      }
    }
    const { rows: [inserted] } = job.payloadJsonb !== null
      ? await query<JobSummary>(client, sql`SELECT ${jobFieldColumns}, status FROM jobs WHERE id = ${id}`)
      : await query<JobSummary>(client, sql`
        INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, callback_url, callback_status)
        VALUES (${id}, ${job.clientId}, ${job.upstream}, ${job.resource}, ${JSON.stringify(job.params)}::jsonb, ${job.requestHash},
          ${job.callbackUrl}, ${callbackStatus}::"CallbackStatus")
        RETURNING ${jobFieldColumns}, status`)
    if (inserted === undefined) throw new Error('INSERT INTO jobs returned no row')
    if (job.idempotency !== null) {
      await query(client, sql`
        INSERT INTO idempotency_keys (client_id, key, request_hash, job_id)
        VALUES (${job.clientId}, ${job.idempotency.key}, ${job.idempotency.requestHash}, ${inserted.id})`)
    }
    return { job: inserted }
  })
}

const SLICE = 1024 * 1024

/** One row of `jobs` in binary COPY format: its fields, the payload as slices of its own bytes (never copied). */
function * copyRow (id: string, job: NewJob, payload: Uint8Array): Generator<Buffer> {
  const text = (value: string): Buffer => Buffer.from(value, 'utf8')
  const jsonb = (value: string): Buffer => Buffer.concat([Buffer.of(1), text(value)])
  const fields: Uint8Array[] = [
    Buffer.from(id.replaceAll('-', ''), 'hex'), text(job.clientId), text(job.upstream), text(job.resource),
    jsonb(JSON.stringify(job.params)), payload, text(job.requestHash),
  ]
  const head = Buffer.alloc(COPY_SIGNATURE.length + 10)
  COPY_SIGNATURE.copy(head)
  head.writeInt16BE(fields.length, COPY_SIGNATURE.length + 8)
  yield head
  for (const field of fields) {
    const length = Buffer.alloc(4)
    length.writeInt32BE(field.length)
    yield length
    for (let at = 0; at < field.length; at += SLICE) yield Buffer.from(field.buffer, field.byteOffset + at, Math.min(SLICE, field.length - at))
  }
  yield Buffer.from([0xff, 0xff])
}

async function copyWriteJob (client: pg.PoolClient, id: string, job: NewJob, payload: Uint8Array): Promise<void> {
  const copy = client.query(copyFrom('COPY jobs (id, client_id, upstream, resource, params, payload, request_hash) FROM STDIN (FORMAT binary)'))
  await pipeline(Readable.from(copyRow(id, job, payload)), copy)
}

/** PostgreSQL's unique_violation: a concurrent request inserted the same in-flight job or key first. */
export function isUniqueViolation (err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === '23505'
}
