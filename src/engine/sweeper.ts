/**
 * The expiry sweeper: completed jobs past `expiresAt` become `expired`, and the result rows of expired,
 * cancelled and past-expiry jobs are deleted in batches (short transactions, no long locks).
 */
import type pg from 'pg'
import type { Logger } from 'pino'
import { jobsWithStaleResults, markExpiredJobs, purgeOldDeliveries } from '../db/sql/expiry.js'
import { deleteResultsBatch } from '../db/sql/results.js'
import { noObserve, type Observe } from '../metrics/observe.js'
import { sleep } from '../upstreams/backoff.js'
import { notifyJobsChanged } from './notifications.js'

export class Sweeper {
  private readonly stopped = new AbortController()
  private wakeUp = new AbortController()
  private loop: Promise<void> | null = null

  constructor (
    private readonly pool: pg.Pool,
    private readonly intervalMs: number,
    private readonly log: Logger,
    /** RESULT_TTL_SECONDS: webhook deliveries hold record content and go when results of their age would. */
    private readonly ttlSeconds: number,
    private readonly observe: Observe = noObserve,
    private readonly batchSize = 5000,
  ) {}

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

  /** One pass; returns what it did. Public so tests and operators can sweep on demand. */
  async sweep (): Promise<{ expired: number, rowsDeleted: number }> {
    const expired = await markExpiredJobs(this.pool)
    this.observe.jobsExpired(expired.length)
    for (const id of expired) this.log.info({ jobId: id }, 'job expired; deleting its results')
    // Every gateway's cache of finished views forgets these now, rather than when its own clock reaches expiresAt.
    await notifyJobsChanged(this.pool, expired)
    let rowsDeleted = 0
    for (;;) {
      const jobs = await jobsWithStaleResults(this.pool, 100)
      if (jobs.length === 0) break
      for (const jobId of jobs) {
        while (!this.stopped.signal.aborted) {
          const n = await deleteResultsBatch(this.pool, jobId, this.batchSize)
          rowsDeleted += n
          // Reported per batch: a sweep that fails halfway has still deleted these.
          this.observe.resultRowsDeleted(n)
          if (n < this.batchSize) break
        }
      }
      if (this.stopped.signal.aborted) break
    }
    await purgeOldDeliveries(this.pool, this.ttlSeconds)
    return { expired: expired.length, rowsDeleted }
  }

  async stop (): Promise<void> {
    this.stopped.abort()
    await this.loop
  }
}
