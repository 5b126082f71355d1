/**
 * The expiry sweeper: what the gateway keeps goes when docs/API.md says it goes. In one pass, each step in batches
 * (short transactions, no long locks), each finding its work through an index of what is still to do
 * (src/db/sql/expiry.ts), so a pass costs what it deletes, not the history the tables hold:
 * 1. finished jobs past `expiresAt` lose what may hold patient data, and completed ones become `expired`;
 * 2. result rows of expired, erased and cancelled jobs are deleted;
 * 3. jobs finished more than JOB_RETENTION_DAYS ago are deleted (their idempotency keys with them);
 * 4. idempotency keys older than IDEMPOTENCY_KEY_TTL_HOURS are deleted;
 * 5. webhook deliveries older than RESULT_TTL_SECONDS are deleted, taken by a job or not.
 * Budget rows (upstream_budget_*) need no step: the budget store deletes them as it counts.
 */
import type pg from 'pg'
import type { Logger } from 'pino'
import {
  deleteExpiredIdempotencyKeys, deleteRetiredJobs, eraseExpiredJobs, jobsToPurge, purgeFinished, purgeOldDeliveries,
} from '../db/sql/expiry.js'
import { deleteResultsBatch } from '../db/sql/results.js'
import { noObserve, type Observe } from '../metrics/observe.js'
import { sleep } from '../lib/time.js'
import { notifyJobsChanged } from './notifications.js'

/** How long each kind of thing is kept (from the configuration). */
export interface Retention {
  /** RESULT_TTL_SECONDS: webhook deliveries hold record content and go when results of their age would. */
  resultTtlSeconds: number
  /** JOB_RETENTION_DAYS (or the test-only JOB_RETENTION_SECONDS), counted from a job's end. */
  jobRetentionSeconds: number
  /** IDEMPOTENCY_KEY_TTL_HOURS. */
  idempotencyKeyTtlHours: number
}

/** What one pass did, step by step, and how long it took. */
export interface SweepReport {
  /** Completed jobs that became expired (all of them erased too). */
  expired: number
  /** Finished jobs whose patient data was erased. */
  erased: number
  /** Result records deleted (with the pages that held them). */
  rowsDeleted: number
  jobsDeleted: number
  keysDeleted: number
  deliveriesDeleted: number
  seconds: number
}

/** Batch sizes: each statement changes at most this many rows (jobs erased, stored pages or jobs deleted). */
export interface SweepBatches { erase: number, results: number, jobs: number, keys: number, deliveries: number }

const defaultBatches: SweepBatches = { erase: 500, results: 200, jobs: 1000, keys: 1000, deliveries: 1000 }

export class Sweeper {
  private readonly stopped = new AbortController()
  private wakeUp = new AbortController()
  private loop: Promise<void> | null = null
  private readonly batches: SweepBatches

  constructor (
    private readonly pool: pg.Pool,
    private readonly intervalMs: number,
    private readonly log: Logger,
    private readonly retention: Retention,
    private readonly observe: Observe = noObserve,
    batches: Partial<SweepBatches> = {}
  ) {
    this.batches = { ...defaultBatches, ...batches }
  }

  start (): void {
    this.loop ??= this.run()
  }

  /** Sweep now (results were dropped by a cancel). */
  wake (): void {
    this.wakeUp.abort()
  }

  private async run (): Promise<void> {
    while (!this.stopped.signal.aborted) {
      const wakeUp = this.wakeUp = new AbortController()
      await this.sweep().catch((err: Error) => this.log.warn({ err: err.message }, 'expiry sweep failed; retrying later'))
      await sleep(this.intervalMs, AbortSignal.any([this.stopped.signal, wakeUp.signal])).catch(() => {})
    }
  }

  private get stopping (): boolean {
    return this.stopped.signal.aborted
  }

  /** One pass; returns what it did. Public so tests, the bench and operators can sweep on demand. */
  async sweep (): Promise<SweepReport> {
    const started = performance.now()
    const report: SweepReport = { expired: 0, erased: 0, rowsDeleted: 0, jobsDeleted: 0, keysDeleted: 0, deliveriesDeleted: 0, seconds: 0 }
    const { batches, retention } = this
    try {
      for (;;) {
        const batch = await eraseExpiredJobs(this.pool, batches.erase)
        report.erased += batch.erased.length
        report.expired += batch.expired.length
        this.observe.jobsExpired(batch.expired.length)
        // Every gateway's cache of finished views forgets these now, rather than when its own clock reaches expiresAt.
        await notifyJobsChanged(this.pool, batch.erased)
        if (batch.erased.length < batches.erase || this.stopping) break
      }
      report.rowsDeleted = await this.purgeResults()
      report.jobsDeleted = await this.repeat(() => deleteRetiredJobs(this.pool, retention.jobRetentionSeconds, batches.jobs), batches.jobs)
      report.keysDeleted = await this.repeat(() => deleteExpiredIdempotencyKeys(this.pool, retention.idempotencyKeyTtlHours, batches.keys), batches.keys)
      report.deliveriesDeleted = await this.repeat(() => purgeOldDeliveries(this.pool, retention.resultTtlSeconds, batches.deliveries), batches.deliveries)
    } finally {
      report.seconds = (performance.now() - started) / 1000
      this.observe.sweepFinished(report.seconds)
    }
    const { seconds, ...counts } = report
    const level = Object.values(counts).some(n => n > 0) ? 'info' : 'debug'
    this.log[level]({ ...counts, durationMs: Math.round(seconds * 1000) }, 'expiry sweep done')
    return report
  }

  /**
   * Deletes the stored pages of every job due for it, a batch of pages at a time; a job leaves the index once its
   * pages are gone. Returns the records deleted.
   */
  private async purgeResults (): Promise<number> {
    let deleted = 0
    let after: string | null = null
    while (!this.stopping) {
      const jobs = await jobsToPurge(this.pool, after, 100)
      if (jobs.length === 0) break
      for (const jobId of jobs) {
        while (!this.stopping) {
          const { pages, records } = await deleteResultsBatch(this.pool, jobId, this.batches.results)
          deleted += records
          // Reported per batch: a sweep that fails halfway has still deleted these.
          this.observe.resultRowsDeleted(records)
          if (pages < this.batches.results) break
        }
        if (this.stopping) break
        await purgeFinished(this.pool, jobId)
      }
      after = jobs[jobs.length - 1] ?? null
    }
    return deleted
  }

  /** Runs a batch step until a batch comes back short (nothing more is due) or the sweeper stops. */
  private async repeat (step: () => Promise<number>, batchSize: number): Promise<number> {
    let total = 0
    while (!this.stopping) {
      const n = await step()
      total += n
      if (n < batchSize) break
    }
    return total
  }

  async stop (): Promise<void> {
    this.stopped.abort()
    await this.loop
  }
}
