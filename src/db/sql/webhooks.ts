/**
 * Webhook deliveries and the parked jobs they finish. A delivery and a park of the same key serialise on an
 * advisory lock, so whichever comes second finds the other: a webhook that arrives before its job has parked
 * is kept and applied when the job parks, never lost.
 */
import type pg from 'pg'
import { insertRecords } from './results.js'
import { query, sql, transaction, type Queryable } from './sql.js'

/** What a delivery does to its job. */
export type DeliveryOutcome = { records: readonly string[] } | { error: { code: string, message: string } }

/** A job a delivery finished: how it ended, and what the engine reports of it (engine/job-endings.ts). */
export interface FinishedByDelivery {
  id: string
  upstream: string
  startedAt: Date | null
  outcome: 'completed' | 'failed'
  code: string | null
  /** Records newly stored. */
  records: number
}

/** `duplicate`: this message id was handled before; `applied`: it finished the jobs waiting for it; `stored`: none yet. */
export type DeliveryResult = { status: 'duplicate' } | { status: 'applied', jobIds: string[], finished: FinishedByDelivery[] } | { status: 'stored' }

export async function lockWebhookKey (db: Queryable, upstream: string, key: string): Promise<void> {
  await query(db, sql`SELECT pg_advisory_xact_lock(hashtextextended(${`webhook:${upstream}:${key}`}, 0))`)
}

/** Finishes a parked job with a delivery's outcome, in the caller's transaction. */
async function finishParkedJob (db: pg.PoolClient, jobId: string, outcome: DeliveryOutcome, ttlSeconds: number): Promise<FinishedByDelivery> {
  if ('error' in outcome) {
    const { rows } = await query<{ upstream: string, started_at: Date | null }>(db, sql`
      UPDATE jobs SET status = 'failed', error_code = ${outcome.error.code}, error_message = ${outcome.error.message},
        finished_at = now(), expires_at = now() + make_interval(secs => ${ttlSeconds}),
        waiting_for = NULL, lease_owner = NULL, lease_expires_at = NULL
      WHERE id = ${jobId}
      RETURNING upstream, started_at`)
    return { id: jobId, upstream: rows[0]!.upstream, startedAt: rows[0]!.started_at, outcome: 'failed', code: outcome.error.code, records: 0 }
  }
  const inserted = await insertRecords(db, jobId, 1, outcome.records)
  const { rows } = await query<{ upstream: string, started_at: Date | null }>(db, sql`
    UPDATE jobs SET status = 'completed', records = records + ${inserted}, pages_done = 1, pages_total = 1, percent = 100,
      finished_at = now(), expires_at = now() + make_interval(secs => ${ttlSeconds}),
      waiting_for = NULL, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ${jobId}
    RETURNING upstream, started_at`)
  return { id: jobId, upstream: rows[0]!.upstream, startedAt: rows[0]!.started_at, outcome: 'completed', code: null, records: inserted }
}

/** Records a delivery once and applies it to the job parked under its key, if there is one. */
export async function deliverWebhook (pool: pg.Pool, input: {
  upstream: string
  messageId: string
  key: string
  outcome: DeliveryOutcome
  ttlSeconds: number
}): Promise<DeliveryResult> {
  return transaction(pool, async client => {
    await lockWebhookKey(client, input.upstream, input.key)
    const fresh = await query(client, sql`
      INSERT INTO webhook_deliveries (upstream, message_id, key, outcome)
      VALUES (${input.upstream}, ${input.messageId}, ${input.key}, ${JSON.stringify(input.outcome)}::jsonb)
      ON CONFLICT DO NOTHING`)
    if (fresh.rowCount !== 1) return { status: 'duplicate' }
    // Several jobs may wait on one key: the upstream runs one job per patient and gives every caller its id.
    const { rows } = await query<{ id: string }>(client, sql`
      SELECT id FROM jobs WHERE upstream = ${input.upstream} AND waiting_for = ${input.key} AND status = 'running'
      FOR UPDATE`)
    if (rows.length === 0) return { status: 'stored' }
    const finished: FinishedByDelivery[] = []
    for (const job of rows) finished.push(await finishParkedJob(client, job.id, input.outcome, input.ttlSeconds))
    await query(client, sql`UPDATE webhook_deliveries SET job_id = ${rows[0]!.id} WHERE upstream = ${input.upstream} AND message_id = ${input.messageId}`)
    return { status: 'applied', jobIds: rows.map(r => r.id), finished }
  })
}

/**
 * Inside parkJob's transaction: applies the first delivery already received for this key, whether or not another
 * job took it too. A key names one upstream run, so every job that was given it wants that run's answer.
 *
 * Only a delivery received after the job first started counts: the upstream's run was started (or joined) by
 * this job, so its answer cannot be older than the job's first attempt. An older delivery under the same key is
 * a reused or guessed key, or another run's stale answer (Metriport's URLs die in 10 minutes), and is left alone:
 * the job waits for its own, or times out.
 */
export async function applyEarlyDelivery (
  db: pg.PoolClient, upstream: string, key: string, jobId: string, ttlSeconds: number
): Promise<FinishedByDelivery | null> {
  const { rows } = await query<{ message_id: string, outcome: DeliveryOutcome }>(db, sql`
    SELECT d.message_id, d.outcome FROM webhook_deliveries d, jobs j
    WHERE d.upstream = ${upstream} AND d.key = ${key} AND j.id = ${jobId}::uuid AND d.received_at >= j.started_at
    ORDER BY d.received_at LIMIT 1`)
  const delivery = rows[0]
  if (delivery === undefined) return null
  const finished = await finishParkedJob(db, jobId, delivery.outcome, ttlSeconds)
  await query(db, sql`UPDATE webhook_deliveries SET job_id = coalesce(job_id, ${jobId}::uuid) WHERE upstream = ${upstream} AND message_id = ${delivery.message_id}`)
  return finished
}
