/**
 * The job service: everything the API asks of jobs, so that routes call one service and never the database.
 * Creation applies idempotency keys and in-flight dedupe; cancellation stops the worker through a notification;
 * reads are scoped to the calling client; results are read as byte batches; webhook deliveries are applied. It
 * owns this process's cache of finished jobs' views, and tells other replicas when one changes.
 */
import type pg from 'pg'
import { Prisma, type JobStatus, type PrismaClient } from '../generated/prisma/client.js'
import { expireCompletedJob } from '../db/sql/expiry.js'
import { insertJob, isUniqueViolation } from '../db/sql/job-insert.js'
import { findClientJob, listClientJobs, type JobListQuery } from '../db/sql/job-reads.js'
import { readablePages, readResultBatch, streamResultBatches } from '../db/sql/result-stream.js'
import type { DeliveryResult } from '../db/sql/webhooks.js'
import type { JobRead, JobSummary } from '../domain/job.js'
import type { BatchSize, RecordBatch, ResultPosition } from '../domain/results.js'
import { noObserve, type Observe } from '../metrics/observe.js'
import { idempotencyBodyDigest, idempotencyKeyDigest } from './idempotency.js'
import { JobViewCache } from './job-view-cache.js'
import { JobEndings, type Delivery } from './job-endings.js'
import { notifyJobsChanged, notifyNewJob } from './notifications.js'
import { followResultBatches, type FollowTarget } from './result-follow.js'
import { ResultWaits } from './result-waits.js'
import { IdempotencyConflictError, TooManyActiveJobsError } from '../domain/errors.js'

/** A validated job request, as the route prepared it (api/job-body-prepare.ts). */
export interface JobRequest {
  clientId: string
  upstream: string
  resource: string
  params: Record<string, unknown>
  /** Write operations, in jsonb's binary format (api/job-body-prepare.ts); null for read jobs. */
  payloadJsonb: Uint8Array | null
  /** The request's identity (engine/canonical.ts). */
  hash: string
  idempotencyKey: string | null
  /** Where to POST the job's view when it ends (checked by the route), or null. */
  callbackUrl?: string | null
}

/** `created` false means an existing job was returned (idempotent replay or in-flight duplicate). */
export interface CreateJobResult { job: JobSummary, created: boolean }

const inFlight: JobStatus[] = ['queued', 'running']

export class JobService {
  private readonly endings: JobEndings

  constructor (
    private readonly prisma: PrismaClient,
    private readonly pool: pg.Pool,
    private readonly ttlSeconds: number,
    /** Called when results were dropped, so the sweeper deletes them now rather than at its next round. */
    private readonly onResultsDropped: () => void = () => {},
    private readonly observe: Observe = noObserve,
    /** Views of finished jobs (see job-view-cache.ts); off until the engine's listener is connected. */
    readonly views: JobViewCache = new JobViewCache(),
    /** IDEMPOTENCY_KEY_TTL_HOURS: after this a key is forgotten, and the same key starts a new job. */
    private readonly keyTtlHours = 24,
    /** MAX_ACTIVE_JOBS_PER_CLIENT (0: no limit); replays and in-flight twins return their job even at it. */
    private readonly maxActivePerClient = 20,
    /** Called after every job this service ends (a cancel, a webhook delivery): its callback may be due. */
    onJobEnded: () => void = () => {},
    /** Readers following running jobs, woken by the engine's listener (result-waits.ts). */
    readonly waits: ResultWaits = new ResultWaits()
  ) {
    this.endings = new JobEndings(pool, ttlSeconds, observe, onJobEnded)
  }

  async create (request: JobRequest): Promise<CreateJobResult> {
    const hash = request.hash
    // A concurrent twin may win the unique index between our read and our insert: then read again.
    for (let attempt = 0; ; attempt++) {
      const existing = await this.findExisting(request, hash)
      if (existing !== null) return { job: existing, created: false }
      try {
        const key = request.idempotencyKey
        const inserted = await insertJob(this.pool, {
          clientId: request.clientId,
          upstream: request.upstream,
          resource: request.resource,
          params: request.params,
          payloadJsonb: request.payloadJsonb,
          requestHash: hash,
          callbackUrl: request.callbackUrl ?? null,
          idempotency: key === null ? null : { key: idempotencyKeyDigest(key), requestHash: idempotencyBodyDigest(key, hash) },
        }, this.maxActivePerClient)
        if (!('job' in inserted)) throw new TooManyActiveJobsError(this.maxActivePerClient)
        await notifyNewJob(this.pool)
        return { job: inserted.job, created: true }
      } catch (err) {
        if (attempt < 3 && (isUniqueViolation(err) || (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002'))) continue
        throw err
      }
    }
  }

  /** The row of a client's Idempotency-Key: digests only (idempotency.ts). */
  private keyRow (clientId: string, key: string, hash: string, jobId: string) {
    return { clientId, key: idempotencyKeyDigest(key), requestHash: idempotencyBodyDigest(key, hash), jobId }
  }

  /** An idempotent replay, or an identical read job still in flight (then the key is bound to it too). */
  private async findExisting (request: JobRequest, hash: string): Promise<JobSummary | null> {
    if (request.idempotencyKey !== null) {
      const clientId = request.clientId
      const key = idempotencyKeyDigest(request.idempotencyKey)
      // A key past its TTL is forgotten here, on the database's clock, whether or not the sweeper has deleted it.
      await this.prisma.$executeRaw`
        DELETE FROM idempotency_keys WHERE client_id = ${clientId} AND key = ${key}
          AND created_at <= now() - make_interval(hours => ${this.keyTtlHours}::int)`
      const known = await this.prisma.idempotencyKey.findUnique({ where: { clientId_key: { clientId, key } } })
      if (known !== null) {
        if (known.requestHash !== idempotencyBodyDigest(request.idempotencyKey, hash)) throw new IdempotencyConflictError('this Idempotency-Key was used with a different request body')
        // Read as GET /jobs/{id} reads it: a replay long after the job completed answers it expired. A job deleted
        // since took its key with it (ON DELETE CASCADE), so the key is free again below.
        const job = await this.get(request.clientId, known.jobId)
        if (job !== null) return job
      }
    }
    if (request.payloadJsonb !== null) return null // writes are never deduplicated
    const twin = await this.prisma.job.findFirst({
      where: { clientId: request.clientId, requestHash: hash, status: { in: inFlight }, payload: { equals: Prisma.DbNull } },
    })
    if (twin !== null && request.idempotencyKey !== null) {
      await this.prisma.idempotencyKey.create({ data: this.keyRow(request.clientId, request.idempotencyKey, hash, twin.id) })
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
    // The row comes back with what the ending reports, so the worker is told before anything else is read.
    const [cancelled] = await this.prisma.job.updateManyAndReturn({
      where: { id, clientId, status: { in: inFlight } },
      data: { status: 'cancelled', finishedAt: now, expiresAt, leaseOwner: null, leaseExpiresAt: null, purgePending: true },
      select: { id: true, upstream: true, startedAt: true },
    })
    if (cancelled !== undefined) await this.endings.cancelled(cancelled)
    else if (await expireCompletedJob(this.pool, clientId, id)) {
      // A finished job's view changed: this process forgets it now, other replicas when the notification arrives.
      this.views.invalidate(id)
      await notifyJobsChanged(this.pool, [id])
    }
    // The sweeper deletes the rows in batches; cancelled and expired jobs answer 410 from now on.
    this.onResultsDropped()
    const job = await this.get(clientId, id)
    return job
  }

  /** One batch of a job's results after `after` (from the start when null), up to `size`. */
  async resultBatch (jobId: string, after: ResultPosition | null, size: BatchSize): Promise<RecordBatch> {
    return readResultBatch(this.pool, jobId, after, size)
  }

  /**
   * The same for a job that has not ended: only from the pages that are final (see readablePages), so that a reader
   * never passes a page that is saved later. An empty batch when nothing is final yet.
   */
  async partialResultBatch (jobId: string, after: ResultPosition | null, size: BatchSize): Promise<RecordBatch> {
    const last = await readablePages(this.pool, jobId)
    if (last === null) return { data: Buffer.alloc(0), starts: [], ends: [], pages: [], positions: [], runs: [], more: false }
    return readResultBatch(this.pool, jobId, after, size, last)
  }

  /** Every result of a job, a batch at a time (two held at most, and the COPY data of a third), for a stream. */
  resultBatches (jobId: string, size: BatchSize): AsyncGenerator<RecordBatch> {
    return streamResultBatches(this.pool, jobId, size)
  }

  /**
   * A job's results as they are saved, until it ends (result-follow.ts): throws FollowBrokenError when it ends
   * without completing (or the process shuts down first), returns when it has completed and everything was read.
   */
  followResults (target: FollowTarget, size: BatchSize): AsyncGenerator<RecordBatch> {
    return followResultBatches(this.pool, this.waits, target, size)
  }

  /** A webhook delivery, verified and read by its upstream's handler: recorded once, and the end of the jobs waiting for it. */
  async deliver (delivery: Delivery): Promise<DeliveryResult> {
    return this.endings.delivered(delivery)
  }
}
