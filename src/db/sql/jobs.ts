/**
 * The worker's statements on `jobs`: claim, heartbeat and finish. Every write after the claim is fenced by
 * `lease_owner`, so a worker whose lease expired (and whose job another worker took over) changes nothing.
 */
import type { Job } from '../../generated/prisma/client.js'
import type pg from 'pg'
import { pastExpiry } from './expiry.js'
import { query, sql, transaction, type Queryable } from './sql.js'
import { applyEarlyDelivery, lockWebhookKey, type FinishedByDelivery } from './webhooks.js'

/**
 * Columns aliased to the Prisma model's field names, so raw rows and Prisma rows have one shape: all but `status`,
 * which the worker reads as stored and clients as read (job-reads.ts), and the payload and checkpoint. What may
 * hold patient data reads null from `expiresAt` on, erased by the sweeper or not yet (a running job has none).
 */
export const jobFieldColumns = sql`id, client_id AS "clientId", upstream, resource,
  CASE WHEN ${pastExpiry} THEN NULL ELSE params END AS params,
  request_hash AS "requestHash", records, pages_done AS "pagesDone",
  pages_total AS "pagesTotal", percent, succeeded, failed, waiting_for AS "waitingFor",
  wait_reason AS "waitReason", wait_until AS "waitUntil", error_code AS "errorCode",
  CASE WHEN ${pastExpiry} THEN NULL ELSE error_message END AS "errorMessage", upstream_status AS "upstreamStatus",
  CASE WHEN ${pastExpiry} THEN NULL ELSE upstream_info END AS "upstreamInfo", attempts, lease_owner AS "leaseOwner",
  lease_expires_at AS "leaseExpiresAt", run_after AS "runAfter", created_at AS "createdAt",
  started_at AS "startedAt", finished_at AS "finishedAt", expires_at AS "expiresAt",
  callback_status AS "callbackStatus", callback_attempts AS "callbackAttempts", callback_last_error AS "callbackLastError"`
export const jobColumns = sql`${jobFieldColumns}, status, payload, checkpoint`

/**
 * Claims the next job, interleaving clients rather than taking one global FIFO: of the clients with runnable
 * jobs, the one with the fewest jobs running now goes first, and among equals the one whose last job started
 * longest ago (round robin, which matters when no job runs at claim time, as with WORKER_CONCURRENCY=1); it gets
 * its oldest queued job. So one client's thousand queued jobs do not hold another client's single job behind
 * them. A running job whose lease expired (its worker died) is taken before any queued job. One statement, so two
 * workers never claim the same job.
 *
 * Index-backed whatever the queue holds: the clients with queued jobs are found by skipping through
 * jobs_active_by_client from one client to the next (a loose index scan, one probe per client); each client's
 * running count and first few runnable jobs are probes of that index, its last start one of
 * jobs_started_by_client. The final pick re-checks, under its row lock, that the job is still runnable, and skips
 * jobs another worker is claiming this instant.
 *
 * `upstreams`: only jobs of these upstreams (the ones this gateway exposes, UPSTREAMS), so replicas that expose
 * different upstreams on one database each take their own; null takes any. A parked job past its deadline is taken
 * whatever its upstream: failing it with upstream_timeout needs no adapter, and no worker of its upstream may be left.
 * Each probe then skips the queued jobs of other upstreams (the index has no upstream): a few per client, as
 * MAX_ACTIVE_JOBS_PER_CLIENT bounds them.
 */
export async function claimNextJob (db: Queryable, workerId: string, leaseSeconds: number, upstreams: readonly string[] | null = null): Promise<Job | null> {
  const list = upstreams === null ? null : [...upstreams]
  const { rows } = await query<Job>(db, sql`
    UPDATE jobs SET status = 'running', lease_owner = ${workerId},
      lease_expires_at = now() + make_interval(secs => ${leaseSeconds}),
      attempts = attempts + 1, started_at = coalesce(started_at, now())
    WHERE id = (
      WITH RECURSIVE served (upstreams) AS (SELECT ${list}::text[]),
      queued_clients (client_id) AS (
        (SELECT client_id FROM jobs, served WHERE status = 'queued' AND (served.upstreams IS NULL OR upstream = ANY (served.upstreams))
          ORDER BY client_id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.client_id FROM jobs j, served WHERE j.status = 'queued' AND j.client_id > q.client_id
            AND (served.upstreams IS NULL OR j.upstream = ANY (served.upstreams)) ORDER BY j.client_id LIMIT 1)
        FROM queued_clients q WHERE q.client_id IS NOT NULL
      ), candidates AS (
        SELECT head.id, 0 AS orphan, running.n AS running, last.started_at AS last_started, head.run_after, head.created_at
        FROM queued_clients q
        CROSS JOIN LATERAL (
          SELECT count(*) AS n FROM jobs r WHERE r.client_id = q.client_id AND r.status = 'running' AND r.lease_owner IS NOT NULL) running
        LEFT JOIN LATERAL (
          SELECT s.started_at FROM jobs s WHERE s.client_id = q.client_id AND s.started_at IS NOT NULL
          ORDER BY s.started_at DESC LIMIT 1) last ON true
        CROSS JOIN LATERAL (
          SELECT id, run_after, created_at FROM jobs j, served
          WHERE j.client_id = q.client_id AND j.status = 'queued' AND j.run_after <= now()
            AND (served.upstreams IS NULL OR j.upstream = ANY (served.upstreams))
          ORDER BY j.run_after, j.created_at LIMIT 4) head
        WHERE q.client_id IS NOT NULL
        UNION ALL
        (SELECT id, -1, 0, NULL::timestamptz, run_after, created_at FROM jobs, served
          WHERE status = 'running' AND lease_expires_at < now()
            AND (served.upstreams IS NULL OR upstream = ANY (served.upstreams) OR waiting_for IS NOT NULL)
          ORDER BY lease_expires_at LIMIT 4)
      )
      SELECT j.id FROM candidates c JOIN jobs j ON j.id = c.id
      WHERE ((j.status = 'queued' AND j.run_after <= now()) OR (j.status = 'running' AND j.lease_expires_at < now()))
      ORDER BY c.orphan, c.running, c.last_started NULLS FIRST, c.run_after, c.created_at
      LIMIT 1
      FOR UPDATE OF j SKIP LOCKED)
    RETURNING ${jobColumns}`)
  return rows[0] ?? null
}

/**
 * Renews the lease: `held`, or why not: `cancelled` (the cancel's notification may reach the worker later), or `lost`
 * (expired and taken, or the job ended).
 */
export async function renewLease (db: Queryable, jobId: string, workerId: string, leaseSeconds: number): Promise<'held' | 'cancelled' | 'lost'> {
  const { rows: [row] } = await query<{ held: boolean, status: string | null }>(db, sql`
    WITH renewed AS (
      UPDATE jobs SET lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
      WHERE id = ${jobId} AND lease_owner = ${workerId} AND status = 'running'
      RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM renewed) AS held, (SELECT status FROM jobs WHERE id = ${jobId}) AS status`)
  if (row?.held === true) return 'held'
  return row?.status === 'cancelled' ? 'cancelled' : 'lost'
}

/**
 * Whether a job whose write or lease renewal was refused was cancelled (and not merely taken over or ended). The
 * cancel's notification may reach the worker after a refused write: the adapter must still learn it was a cancel.
 */
export async function wasCancelled (db: Queryable, jobId: string): Promise<boolean> {
  const { rows } = await query<{ status: string }>(db, sql`SELECT status FROM jobs WHERE id = ${jobId}`)
  return rows[0]?.status === 'cancelled'
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
 * job parked is applied at once (see webhooks.ts): `finished` then says how the job ended. `held` is false when the
 * lease was lost.
 */
export async function parkJob (pool: pg.Pool, input: {
  jobId: string,
  workerId: string,
  upstream: string,
  key: string,
  timeoutSeconds: number,
  ttlSeconds: number,
}): Promise<{ held: boolean, finished: FinishedByDelivery | null }> {
  return transaction(pool, async client => {
    await lockWebhookKey(client, input.upstream, input.key)
    const { rowCount } = await query(client, sql`
      UPDATE jobs SET waiting_for = ${input.key}, lease_owner = NULL,
        lease_expires_at = now() + make_interval(secs => ${input.timeoutSeconds})
      WHERE id = ${input.jobId} AND lease_owner = ${input.workerId} AND status = 'running'`)
    if (rowCount !== 1) return { held: false, finished: null }
    return { held: true, finished: await applyEarlyDelivery(client, input.upstream, input.key, input.jobId, input.ttlSeconds) }
  })
}
