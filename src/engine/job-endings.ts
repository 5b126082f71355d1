/**
 * "A job ended": the one place that writes a job's end and reports it. However a job ends (its worker's run
 * completes or fails, a webhook delivery finishes it while it is parked or as it parks, the client cancels it),
 * the state change goes through here, and so do the metrics and the notifications that go with it, so that no
 * ending is counted twice or not at all.
 */
import type pg from 'pg'
import { completeJob, failJob, parkJob, type JobFailure } from '../db/sql/jobs.js'
import { deliverWebhook, type DeliveryOutcome, type DeliveryResult, type FinishedByDelivery } from '../db/sql/webhooks.js'
import { noObserve, secondsSince, type Observe } from '../metrics/observe.js'
import { notifyCancel, notifyJobsEnded } from './notifications.js'

/** What the endings need to know of the job: which upstream it ran on and since when. */
export interface EndingJob { id: string, upstream: string, startedAt: Date | null }

/** A webhook delivery as the upstream's handler read it (contract/webhook.ts), for the jobs parked on its key. */
export interface Delivery { upstream: string, messageId: string, key: string, outcome: DeliveryOutcome }

export class JobEndings {
  constructor (
    private readonly pool: pg.Pool,
    /** RESULT_TTL_SECONDS: a finished job's results live this long. */
    private readonly ttlSeconds: number,
    private readonly observe: Observe = noObserve,
    /** Called after every ending: the job may have a completion callback that is due now (callbacks.ts). */
    private readonly onEnded: () => void = () => {}
  ) {}

  /** The worker's run finished: the job completes. False (and nothing reported) when the lease was lost. */
  async completed (job: EndingJob, workerId: string): Promise<boolean> {
    if (!await completeJob(this.pool, job.id, workerId, this.ttlSeconds)) return false
    this.observe.jobFinished({ upstream: job.upstream, outcome: 'completed', durationSeconds: secondsSince(job.startedAt) })
    this.announce([job.id])
    this.onEnded()
    return true
  }

  /** The job fails with a stable code. False (and nothing reported) when the lease was lost. */
  async failed (job: EndingJob, workerId: string, failure: JobFailure): Promise<boolean> {
    if (!await failJob(this.pool, job.id, workerId, failure, this.ttlSeconds)) return false
    this.observe.jobFinished({ upstream: job.upstream, outcome: 'failed', code: failure.code, durationSeconds: secondsSince(job.startedAt) })
    this.announce([job.id])
    this.onEnded()
    return true
  }

  /**
   * The job waits for its webhook. A delivery that came first ends it at once; `held` is false when the lease was
   * lost.
   */
  async parked (job: EndingJob, workerId: string, wait: { key: string, timeoutSeconds: number }): Promise<{ held: boolean }> {
    const { held, finished } = await parkJob(this.pool, { jobId: job.id, workerId, upstream: job.upstream, ...wait, ttlSeconds: this.ttlSeconds })
    if (finished !== null) this.reportDelivered([finished])
    return { held }
  }

  /** A webhook delivery: recorded once per message id, and the end of every job parked on its key. */
  async delivered (delivery: Delivery): Promise<DeliveryResult> {
    const result = await deliverWebhook(this.pool, { ...delivery, ttlSeconds: this.ttlSeconds })
    if (result.status === 'applied') this.reportDelivered(result.finished)
    return result
  }

  /**
   * The client cancelled a queued or running job (the row was changed by the caller, in its own statement): the
   * worker that runs it, wherever it is, is told at once, and the end is counted here, as no worker may have seen
   * the job.
   */
  async cancelled (job: EndingJob): Promise<void> {
    await notifyCancel(this.pool, job.id)
    this.observe.jobFinished({ upstream: job.upstream, outcome: 'cancelled', durationSeconds: secondsSince(job.startedAt) })
    this.onEnded()
  }

  /**
   * Readers following the jobs' results (engine/result-follow.ts) finish, on every replica. Not awaited: the end is
   * written whatever becomes of the notification, and a reader that misses it re-checks on its own.
   */
  private announce (jobIds: readonly string[]): void {
    notifyJobsEnded(this.pool, jobIds).catch(() => {})
  }

  private reportDelivered (jobs: readonly FinishedByDelivery[]): void {
    this.announce(jobs.map(job => job.id))
    for (const job of jobs) {
      const durationSeconds = secondsSince(job.startedAt)
      if (job.outcome === 'failed') this.observe.jobFinished({ upstream: job.upstream, outcome: 'failed', code: job.code ?? undefined, durationSeconds })
      else {
        this.observe.jobFinished({ upstream: job.upstream, outcome: 'completed', durationSeconds })
        this.observe.recordsStored(job.upstream, job.records)
      }
    }
    if (jobs.length > 0) this.onEnded()
  }
}
