/**
 * The worker's statements on `jobs`: claim, heartbeat and finish. Every write after the claim is fenced by
 * `lease_owner`, so a worker whose lease expired (and whose job another worker took over) changes nothing.
 */
import type { Job } from '../../generated/prisma/client.js'
import type pg from 'pg'
import { query, sql, transaction, type Queryable } from './sql.js'
import { applyEarlyDelivery, lockWebhookKey } from './webhooks.js'

/** A job without what only its worker reads: the payload (up to 100 000 write operations) and the checkpoint. */
export type JobSummary = Omit<Job, 'payload' | 'checkpoint'>

/**
 * Columns aliased to the Prisma model's field names, so raw rows and Prisma rows have one shape: all but `status`,
 * which the worker reads as stored and clients as read (job-reads.ts), and the payload and checkpoint.
 */
export const jobFieldColumns = sql`id, client_id AS "clientId", upstream, resource, params,
  request_hash AS "requestHash", records, pages_done AS "pagesDone",
  pages_total AS "pagesTotal", percent, succeeded, failed, waiting_for AS "waitingFor",
  wait_reason AS "waitReason", wait_until AS "waitUntil", error_code AS "errorCode", error_message AS "errorMessage",
  upstream_status AS "upstreamStatus", upstream_info AS "upstreamInfo", attempts, lease_owner AS "leaseOwner",
  lease_expires_at AS "leaseExpiresAt", run_after AS "runAfter", created_at AS "createdAt",
  started_at AS "startedAt", finished_at AS "finishedAt", expires_at AS "expiresAt"`
export const jobColumns = sql`${jobFieldColumns}, status, payload, checkpoint`

/**
 * Claims the oldest runnable job: queued and due, or running with an expired lease (its worker died).
 * One statement, so two workers never claim the same job.
 */
export async function claimNextJob (db: Queryable, workerId: string, leaseSeconds: number): Promise<Job | null> {
  const { rows } = await query<Job>(db, sql`
    UPDATE jobs SET status = 'running', lease_owner = ${workerId},
      lease_expires_at = now() + make_interval(secs => ${leaseSeconds}),
      attempts = attempts + 1, started_at = coalesce(started_at, now())
    WHERE id = (
      SELECT id FROM jobs
      WHERE (status = 'queued' AND run_after <= now())
         OR (status = 'running' AND lease_expires_at < now())
      ORDER BY run_after, created_at
      LIMIT 1
      FOR UPDATE SKIP LOCKED)
    RETURNING ${jobColumns}`)
  return rows[0] ?? null
}

/** Renews the lease; false when it was lost (expired and taken, or the job was cancelled). */
export async function renewLease (db: Queryable, jobId: string, workerId: string, leaseSeconds: number): Promise<boolean> {
  const { rowCount } = await query(db, sql`
    UPDATE jobs SET lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
    WHERE id = ${jobId} AND lease_owner = ${workerId} AND status = 'running'`)
  return rowCount === 1
}

/** Marks a job completed; its results live `ttlSeconds` from now. False when the lease was lost. */
export async function completeJob (db: Queryable, jobId: string, workerId: string, ttlSeconds: number): Promise<boolean> {
  const { rowCount } = await query(db, sql`
    UPDATE jobs SET status = 'completed', percent = 100, finished_at = now(),
      expires_at = now() + make_interval(secs => ${ttlSeconds}), lease_owner = NULL, lease_expires_at = NULL,
      wait_reason = NULL, wait_until = NULL
    WHERE id = ${jobId} AND lease_owner = ${workerId} AND status = 'running'`)
  return rowCount === 1
}

/** A job's failure, as clients see it. */
export interface JobFailure { code: string, message: string, upstreamStatus: number | null }

/** Marks a job failed with a stable code. False when the lease was lost. */
export async function failJob (db: Queryable, jobId: string, workerId: string | null, failure: JobFailure, ttlSeconds: number): Promise<boolean> {
  const { rowCount } = await query(db, sql`
    UPDATE jobs SET status = 'failed', error_code = ${failure.code}, error_message = ${failure.message},
      upstream_status = ${failure.upstreamStatus}, finished_at = now(),
      expires_at = now() + make_interval(secs => ${ttlSeconds}), lease_owner = NULL, lease_expires_at = NULL,
      waiting_for = NULL, wait_reason = NULL, wait_until = NULL
    WHERE id = ${jobId} AND status = 'running' AND lease_owner IS NOT DISTINCT FROM ${workerId}`)
  return rowCount === 1
}

/**
 * Gives a running job back to the queue: on shutdown (the attempt does not count) or after a transient
 * failure such as a lost database connection (it does, and the job waits `delaySeconds`).
 */
export async function releaseJob (db: Queryable, jobId: string, workerId: string, opts: { countAttempt: boolean, delaySeconds: number }): Promise<boolean> {
  const { rowCount } = await query(db, sql`
    UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
      wait_reason = NULL, wait_until = NULL, attempts = attempts - ${opts.countAttempt ? 0 : 1},
      run_after = now() + make_interval(secs => ${opts.delaySeconds})
    WHERE id = ${jobId} AND lease_owner = ${workerId} AND status = 'running'`)
  return rowCount === 1
}

/** What a running job waits for (a request budget) and until when; null clears it. False when the lease was lost. */
export async function setJobWait (db: Queryable, jobId: string, workerId: string, wait: { reason: string, until: Date } | null): Promise<boolean> {
  const { rowCount } = await query(db, sql`
    UPDATE jobs SET wait_reason = ${wait?.reason ?? null}, wait_until = ${wait?.until ?? null}
    WHERE id = ${jobId} AND lease_owner = ${workerId} AND status = 'running'`)
  return rowCount === 1
}

/** Merges facts about the upstream run into `upstream_info`. */
export async function mergeUpstreamInfo (db: Queryable, jobId: string, workerId: string, info: Record<string, unknown>): Promise<boolean> {
  const { rowCount } = await query(db, sql`
    UPDATE jobs SET upstream_info = coalesce(upstream_info, '{}'::jsonb) || ${JSON.stringify(info)}::jsonb
    WHERE id = ${jobId} AND lease_owner = ${workerId} AND status = 'running'`)
  return rowCount === 1
}

/**
 * Parks a running job until a webhook names `key`: no worker holds it, and its lease runs until the deadline,
 * after which any worker claims it again and fails it with upstream_timeout. A delivery that arrived before the
 * job parked is applied at once (see webhooks.ts). False when the lease was lost.
 */
export async function parkJob (pool: pg.Pool, input: { jobId: string, workerId: string, upstream: string, key: string, timeoutSeconds: number, ttlSeconds: number }): Promise<boolean> {
  return transaction(pool, async client => {
    await lockWebhookKey(client, input.upstream, input.key)
    const { rowCount } = await query(client, sql`
      UPDATE jobs SET waiting_for = ${input.key}, lease_owner = NULL,
        lease_expires_at = now() + make_interval(secs => ${input.timeoutSeconds})
      WHERE id = ${input.jobId} AND lease_owner = ${input.workerId} AND status = 'running'`)
    if (rowCount !== 1) return false
    await applyEarlyDelivery(client, input.upstream, input.key, input.jobId, input.ttlSeconds)
    return true
  })
}
