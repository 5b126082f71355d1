/**
 * The job service: what the API asks of jobs. Creation applies idempotency keys and in-flight dedupe;
 * cancellation stops the worker through a notification; reads are scoped to the calling client. It owns this
 * process's cache of finished jobs' views, and tells other replicas when one changes.
 */
import type pg from 'pg'
import { Prisma, type JobStatus, type PrismaClient } from '../generated/prisma/client.js'
import { expireCompletedJob } from '../db/sql/expiry.js'
import { findClientJob, listClientJobs, type JobListQuery, type JobRead } from '../db/sql/job-reads.js'
import type { JobSummary } from '../db/sql/jobs.js'
import { noObserve, secondsSince, type Observe } from '../metrics/observe.js'
import { requestHash } from './canonical.js'
import { JobViewCache } from './job-view-cache.js'
import { notifyCancel, notifyJobsChanged, notifyNewJob } from './notifications.js'

/** A validated job request. `payload` carries write operations; null for read jobs. */
export interface JobRequest {
  clientId: string
  upstream: string
  resource: string
  params: Record<string, unknown>
  payload: unknown
  idempotencyKey: string | null
}

/** The same Idempotency-Key was used with a different body. */
export class IdempotencyConflictError extends Error {
  override name = 'IdempotencyConflictError'
}

/** `created` false means an existing job was returned (idempotent replay or in-flight duplicate). */
export interface CreateJobResult { job: JobSummary, created: boolean }

const inFlight: JobStatus[] = ['queued', 'running']

export class JobService {
  constructor (
    private readonly prisma: PrismaClient,
    private readonly pool: pg.Pool,
    private readonly ttlSeconds: number,
    /** Called when results were dropped, so the sweeper deletes them now rather than at its next round. */
    private readonly onResultsDropped: () => void = () => {},
    private readonly observe: Observe = noObserve,
    /** Views of finished jobs (see job-view-cache.ts); off until the engine's listener is connected. */
    readonly views: JobViewCache = new JobViewCache(),
  ) {}

  async create (request: JobRequest): Promise<CreateJobResult> {
    const hash = requestHash({ upstream: request.upstream, resource: request.resource, params: request.params, payload: request.payload ?? null })
    // A concurrent twin may win the unique index between our read and our insert: then read again.
    for (let attempt = 0; ; attempt++) {
      const existing = await this.findExisting(request, hash)
      if (existing !== null) return { job: existing, created: false }
      try {
        const job = await this.prisma.$transaction(async tx => {
          const job = await tx.job.create({
            data: {
              clientId: request.clientId,
              upstream: request.upstream,
              resource: request.resource,
              params: request.params as Prisma.InputJsonObject,
              payload: request.payload === null || request.payload === undefined ? Prisma.DbNull : request.payload as Prisma.InputJsonValue,
              requestHash: hash,
            },
          })
          if (request.idempotencyKey !== null) {
            await tx.idempotencyKey.create({ data: { clientId: request.clientId, key: request.idempotencyKey, requestHash: hash, jobId: job.id } })
          }
          return job
        })
        await notifyNewJob(this.pool)
        return { job, created: true }
      } catch (err) {
        if (attempt < 3 && err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') continue
        throw err
      }
    }
  }

  /** An idempotent replay, or an identical read job still in flight (then the key is bound to it too). */
  private async findExisting (request: JobRequest, hash: string): Promise<JobSummary | null> {
    if (request.idempotencyKey !== null) {
      const known = await this.prisma.idempotencyKey.findUnique({
        where: { clientId_key: { clientId: request.clientId, key: request.idempotencyKey } },
      })
      if (known !== null) {
        if (known.requestHash !== hash) throw new IdempotencyConflictError('this Idempotency-Key was used with a different request body')
        // Read as GET /jobs/{id} reads it: a replay long after the job completed answers it expired. A job deleted
        // since took its key with it (ON DELETE CASCADE), so the key is free again below.
        const job = await this.get(request.clientId, known.jobId)
        if (job !== null) return job
      }
    }
    if (request.payload !== null && request.payload !== undefined) return null // writes are never deduplicated
    const twin = await this.prisma.job.findFirst({
      where: { clientId: request.clientId, requestHash: hash, status: { in: inFlight }, payload: { equals: Prisma.DbNull } },
    })
    if (twin !== null && request.idempotencyKey !== null) {
      await this.prisma.idempotencyKey.create({ data: { clientId: request.clientId, key: request.idempotencyKey, requestHash: hash, jobId: twin.id } })
    }
    return twin
  }

  /**
   * The client's job, or null (another client's job is as unknown as a missing one). `id` must be a UUID.
   * Plain SQL, not Prisma: this is the read behind every GET /jobs/{id} and every results request.
   */
  async get (clientId: string, id: string): Promise<JobRead | null> {
    return findClientJob(this.pool, clientId, id)
  }

  /**
   * The client's jobs, newest first, after the job `before` (a keyset cursor). Plain SQL, not Prisma: the status
   * filter matches the status as read, which the database judges (see job-reads.ts).
   */
  async list (clientId: string, query: JobListQuery): Promise<JobRead[]> {
    return listClientJobs(this.pool, clientId, query)
  }

  /**
   * Cancels a queued or running job (its worker is told at once and stops its upstream requests), or drops a
   * completed job's results early (it becomes expired). Other terminal jobs are unchanged. Idempotent.
   */
  async cancel (clientId: string, id: string): Promise<JobRead | null> {
    const now = new Date()
    const expiresAt = new Date(now.getTime() + this.ttlSeconds * 1000)
    const cancelled = await this.prisma.job.updateMany({
      where: { id, clientId, status: { in: inFlight } },
      data: { status: 'cancelled', finishedAt: now, expiresAt, leaseOwner: null, leaseExpiresAt: null },
    })
    if (cancelled.count === 1) await notifyCancel(this.pool, id)
    else if (await expireCompletedJob(this.pool, clientId, id)) {
      // A finished job's view changed: this process forgets it now, other replicas when the notification arrives.
      this.views.invalidate(id)
      await notifyJobsChanged(this.pool, [id])
    }
    // The sweeper deletes the rows in batches; cancelled and expired jobs answer 410 from now on.
    this.onResultsDropped()
    const job = await this.get(clientId, id)
    // Counted here, not by the worker: a queued job is cancelled without any worker seeing it.
    if (cancelled.count === 1 && job !== null) {
      this.observe.jobFinished({ upstream: job.upstream, outcome: 'cancelled', durationSeconds: secondsSince(job.startedAt) })
    }
    return job
  }
}
