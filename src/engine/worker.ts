/**
 * The worker: claims jobs from Postgres with a lease, runs each through its upstream's adapter with an
 * AbortSignal, renews the lease by heartbeat, and finishes the job with a stable outcome.
 *
 * States: created → active → stopping → stopped. `stop()` is idempotent and bounded: running jobs are
 * aborted and released for another worker (the attempt does not count), never lost.
 */
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import type { Logger } from 'pino'
import type { Job } from '../generated/prisma/client.js'
import { claimNextJob, releaseJob, renewLease, type JobFailure } from '../db/sql/jobs.js'
import { LeaseLostError, UpstreamError, JobCancelledError, ShutdownError } from '../domain/errors.js'
import { noObserve, type Observe } from '../metrics/observe.js'
import { backoffDelay, sleep } from '../lib/time.js'
import type { UpstreamAdapter } from '../contract/adapter.js'
import { createJobContext, parked } from './context.js'
import { JobEndings } from './job-endings.js'
import { notifyNewJob } from './notifications.js'

export interface WorkerOptions {
  concurrency: number
  leaseSeconds: number
  pollSeconds: number
  maxAttempts: number
  ttlSeconds: number
  shutdownTimeoutMs: number
  /** No record larger is stored (UPSTREAM_MAX_RECORD_BYTES); unset = no limit. */
  maxRecordBytes?: number
  /** Called after each job this worker ends (its completion callback may be due). */
  onJobEnded?: () => void
  /**
   * The upstreams this gateway exposes (UPSTREAMS): only their jobs are claimed, so a replica never takes, and
   * fails, a job of an upstream another replica serves. Unset: any job.
   */
  upstreams?: readonly string[]
}

type WorkerState = 'created' | 'active' | 'stopping' | 'stopped'

interface RunningJob { job: Job, controller: AbortController, done: Promise<void> }

export class Worker {
  readonly id = `worker-${randomUUID()}`
  private state: WorkerState = 'created'
  private readonly running = new Map<string, RunningJob>()
  private wakeUp: AbortController = new AbortController()
  private loop: Promise<void> | null = null
  private stopping: Promise<void> | null = null
  private readonly endings: JobEndings

  constructor (
    private readonly pool: pg.Pool,
    private readonly adapterFor: (upstream: string) => UpstreamAdapter | undefined,
    private readonly options: WorkerOptions,
    private readonly log: Logger,
    private readonly observe: Observe = noObserve
  ) {
    this.endings = new JobEndings(pool, options.ttlSeconds, observe, options.onJobEnded)
  }

  get status (): WorkerState { return this.state }
  /** Jobs this worker holds a lease on right now. */
  get leasesHeld (): number { return this.running.size }

  start (): void {
    if (this.state !== 'created' || this.options.concurrency === 0) return
    this.state = 'active'
    this.loop = this.claimLoop()
  }

  /** Makes an idle worker look for jobs now (a job was created, a slot freed). */
  wake (): void {
    this.wakeUp.abort()
  }

  /** Stops the job at once if this worker runs it (the client cancelled it). */
  cancel (jobId: string): void {
    this.running.get(jobId)?.controller.abort(JobCancelledError.of(jobId))
  }

  private async claimLoop (): Promise<void> {
    let failures = 0
    while (this.state === 'active') {
      const wakeUp = this.wakeUp = new AbortController()
      try {
        while (this.state === 'active' && this.running.size < this.options.concurrency) {
          const job = await claimNextJob(this.pool, this.id, this.options.leaseSeconds, this.options.upstreams ?? null)
          if (job === null) break
          if (this.state !== 'active') {
            // Claimed while the shutdown began: not among the jobs it aborts, so handed back here, as they are. If
            // that fails too (the database is gone), the lease runs out and another worker takes the job.
            await this.handBack(job).catch((err: Error) => { this.log.warn({ jobId: job.id, err: err.message }, 'could not release a job claimed during shutdown') })
            break
          }
          this.begin(job)
        }
        failures = 0
      } catch (err) {
        failures++
        this.log.error({ err: (err as Error).message }, 'claiming a job failed; retrying')
      }
      if (this.state !== 'active') break
      const wait = failures > 0 ? backoffDelay(failures, { baseMs: 500, maxMs: 30_000 }) : this.options.pollSeconds * 1000
      await sleep(wait, wakeUp.signal).catch(() => {})
    }
  }

  private begin (job: Job): void {
    const controller = new AbortController()
    const entry: RunningJob = { job, controller, done: Promise.resolve() }
    this.running.set(job.id, entry)
    entry.done = this.runJob(job, controller).finally(() => {
      this.running.delete(job.id)
      this.wake()
    })
  }

  private async runJob (job: Job, controller: AbortController): Promise<void> {
    const log = this.log.child({ jobId: job.id, upstream: job.upstream, resource: job.resource, attempt: job.attempts })
    if (job.waitingFor !== null) {
      // A parked job comes back to a worker only when its deadline passed without the webhook.
      log.warn('job timed out waiting for its webhook')
      await this.fail(job, { code: 'upstream_timeout', message: `${job.upstream} did not call back before the deadline`, upstreamStatus: null })
      return
    }
    if (job.attempts > this.options.maxAttempts) {
      log.error('job gave up: too many attempts')
      await this.fail(job, { code: 'internal_error', message: `the job was attempted ${job.attempts - 1} times without finishing`, upstreamStatus: null })
      return
    }
    const adapter = this.adapterFor(job.upstream)
    if (adapter === undefined) {
      await this.fail(job, { code: 'upstream_not_configured', message: `upstream ${job.upstream} is not configured on this gateway`, upstreamStatus: null })
      return
    }
    const heartbeat = setInterval(() => {
      renewLease(this.pool, job.id, this.id, this.options.leaseSeconds).then(lease => {
        if (lease === 'cancelled') controller.abort(JobCancelledError.of(job.id))
        else if (lease === 'lost') controller.abort(new LeaseLostError(`lost the lease on job ${job.id}`))
      }, (err: Error) => log.warn({ err: err.message }, 'lease renewal failed; retrying at the next beat'))
    }, Math.max(200, this.options.leaseSeconds * 1000 / 3))
    log.info(job.checkpoint === null ? 'job started' : 'job resumed from its checkpoint')
    try {
      const outcome = await adapter.run(createJobContext({
        pool: this.pool,
        job,
        workerId: this.id,
        controller,
        log,
        endings: this.endings,
        observe: this.observe,
        maxRecordBytes: this.options.maxRecordBytes,
        maxAttempts: this.options.maxAttempts,
      }))
      if (outcome === parked) {
        log.info('job waits for the upstream\'s webhook')
        return
      }
      controller.signal.throwIfAborted()
      if (await this.endings.completed(job, this.id)) log.info('job completed')
    } catch (err) {
      await this.settle(job, controller.signal.aborted ? controller.signal.reason : err, log)
    } finally {
      clearInterval(heartbeat)
    }
  }

  /** Decides what an interrupted or failed run means for the job. */
  private async settle (job: Job, reason: unknown, log: Logger): Promise<void> {
    if (reason instanceof ShutdownError) {
      await this.handBack(job)
      log.info('job released for another worker (shutdown)')
    } else if (reason instanceof JobCancelledError) {
      log.info('job cancelled') // and counted by the job service, which cancelled it
    } else if (reason instanceof LeaseLostError) {
      log.warn('job left: its lease ran out and another worker took it, or the job ended meanwhile')
    } else if (reason instanceof UpstreamError) {
      log.warn({ code: reason.code, upstreamStatus: reason.upstreamStatus }, 'job failed')
      await this.fail(job, { code: reason.code, message: reason.message, upstreamStatus: reason.upstreamStatus })
    } else if (job.attempts >= this.options.maxAttempts) {
      log.error({ err: (reason as Error)?.message }, 'job failed: unexpected error on its last attempt')
      await this.fail(job, { code: 'internal_error', message: 'the gateway failed to run this job', upstreamStatus: null })
    } else {
      // Unexpected errors are usually transient (a database restart): retry later from the checkpoint.
      const delaySeconds = Math.ceil(backoffDelay(job.attempts, { baseMs: 1000, maxMs: 60_000 }) / 1000)
      log.warn({ err: (reason as Error)?.message, delaySeconds }, 'job interrupted; it will resume from its checkpoint')
      await releaseJob(this.pool, job.id, this.id, { countAttempt: true, delaySeconds }).catch(() => {})
    }
  }

  /** Releases a job at shutdown for another worker (the attempt does not count). */
  private async handBack (job: Job): Promise<void> {
    await releaseJob(this.pool, job.id, this.id, { countAttempt: false, delaySeconds: 0 })
    // Wake the other replicas now rather than at their next poll: a rolling deploy hands the job over at once.
    await notifyNewJob(this.pool).catch(() => {})
  }

  /** Fails the job with a stable code. A lost lease changes nothing, so nothing is reported either. */
  private async fail (job: Job, failure: JobFailure): Promise<void> {
    await this.endings.failed(job, this.id, failure)
  }

  /** Stops claiming, aborts running jobs and waits (bounded) for them to be released. Idempotent. */
  async stop (): Promise<void> {
    this.stopping ??= this.shutdown()
    return this.stopping
  }

  private async shutdown (): Promise<void> {
    if (this.state === 'created') {
      this.state = 'stopped'
      return
    }
    this.state = 'stopping'
    this.wake()
    const jobs = [...this.running.values()]
    for (const entry of jobs) entry.controller.abort(new ShutdownError('the gateway is shutting down'))
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<'timeout'>(resolve => { timer = setTimeout(resolve, this.options.shutdownTimeoutMs, 'timeout') })
    const outcome = await Promise.race([Promise.all([this.loop, ...jobs.map(j => j.done)]).then(() => 'done' as const), deadline])
    clearTimeout(timer)
    if (outcome === 'timeout') {
      // An adapter that ignores its signal must not keep the job: release it; its late writes are fenced.
      for (const entry of this.running.values()) {
        await releaseJob(this.pool, entry.job.id, this.id, { countAttempt: false, delaySeconds: 0 }).catch(() => {})
      }
      this.log.warn({ jobs: this.running.size }, 'shutdown deadline reached; released jobs still running')
    }
    this.state = 'stopped'
  }
}
