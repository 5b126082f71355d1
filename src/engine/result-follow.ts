/**
 * Following a job's results while it runs (`GET /jobs/{id}/results?follow=true`, NDJSON): the records saved so far,
 * then each page as it becomes readable, until the job ends. The reader sleeps between reads on a
 * {@link JobWatch}, woken by the job's notifications (a page saved, the job's end), not by polling the database.
 *
 * Each round reads the job's status, then what is readable: while the job runs only pages 1..n with none missing
 * (readablePages: DrChrono saves pages out of order), once it has completed every page. The status is read first,
 * so a job read as completed has all of its pages saved (completion commits after them). A round costs a few
 * statements, whatever the number of records; records are read in batches of `size`, one batch held at a time,
 * and the next is read only once the caller has taken the current one (its consumer's backpressure).
 */
import type pg from 'pg'
import { findClientJob } from '../db/sql/job-reads.js'
import { readablePages, readResultBatch } from '../db/sql/result-stream.js'
import { FollowBrokenError } from '../domain/errors.js'
import type { BatchSize, RecordBatch, ResultPosition } from '../domain/results.js'
import type { ResultWaits } from './result-waits.js'

/** Which job, whose reader, and until when: `signal` aborts when the reader has gone. */
export interface FollowTarget { clientId: string, jobId: string, signal: AbortSignal }

/**
 * Every record of the job, in order, as batches, while it runs and until it ends. Returns once the job has completed
 * and its last record was yielded; throws {@link FollowBrokenError} when it ends otherwise (failed, cancelled,
 * expired, deleted) or the process shuts down while it runs. Returns early, without error, when `signal` aborts.
 */
export async function * followResultBatches (pool: pg.Pool, waits: ResultWaits, target: FollowTarget, size: BatchSize): AsyncGenerator<RecordBatch> {
  const { clientId, jobId, signal } = target
  // Watching from before the first read: a page saved while a round reads wakes the next wait at once.
  const watch = waits.watch(jobId)
  try {
    let after: ResultPosition | null = null
    // Pages 1..readable are saved and read: each round looks only past them for newly readable pages.
    let readable = 0
    while (!signal.aborted) {
      // The job may run for hours: a reader does not hold this process's shutdown until its deadline.
      if (waits.closed) throw new FollowBrokenError(jobId, 'shutdown')
      const job = await findClientJob(pool, clientId, jobId)
      const status = job?.status ?? 'deleted'
      const running = status === 'queued' || status === 'running'
      if (!running && status !== 'completed') throw new FollowBrokenError(jobId, status)
      const last = running ? await readablePages(pool, jobId, readable) : null
      if (last !== null) readable = last
      if (!running || last !== null) {
        for (;;) {
          const batch: RecordBatch = await readResultBatch(pool, jobId, after, size, last)
          const count = batch.starts.length
          if (count > 0) {
            after = { page: batch.pages[count - 1] as number, position: batch.positions[count - 1] as number }
            yield batch
          }
          if (!batch.more || signal.aborted) break
        }
      }
      if (!running) return
      await watch.next(signal)
    }
  } finally {
    watch.close()
  }
}
