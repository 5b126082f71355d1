/** Builds the {@link JobContext} an adapter runs with: the job's inputs and fenced writes to the database. */
import type pg from 'pg'
import type { Logger } from 'pino'
import type { Job } from '../generated/prisma/client.js'
import { mergeUpstreamInfo, setJobWait, wasCancelled } from '../db/sql/jobs.js'
import { savePage } from '../db/sql/results.js'
import { JobCancelledError, LeaseLostError, ShutdownError } from '../domain/errors.js'
import { noObserve, type Observe } from '../metrics/observe.js'
import { checkRecordSizes } from '../contract/record-limits.js'
import type { JobContext, Parked, ProgressUpdate } from '../contract/adapter.js'
import type { JobEndings } from './job-endings.js'
import { notifyPageSaved } from './notifications.js'

/** The one value `park` returns; the worker recognises a parked run by it. */
export const parked: Parked = Object.freeze({ parked: true })

/**
 * Why a write that only says it was refused (upstream info, parking) was: a cancel (whose notification may not have
 * reached the worker yet), or `lost` (the lease ran out or the job ended). A failed look-up counts as lost. Page and
 * checkpoint writes and the heartbeat learn it in the statement that was refused.
 */
async function refusal (pool: pg.Pool, jobId: string, lost: LeaseLostError): Promise<JobCancelledError | LeaseLostError> {
  const cancelled = await wasCancelled(pool, jobId).catch(() => false)
  return cancelled ? JobCancelledError.of(jobId) : lost
}

export function createJobContext (deps: {
  pool: pg.Pool
  job: Job
  workerId: string
  controller: AbortController
  log: Logger
  /** Where the job's end is written when a webhook delivery that came first finishes it as it parks. */
  endings: JobEndings
  observe?: Observe
  /** UPSTREAM_MAX_RECORD_BYTES: a larger record fails the job with upstream_response_too_large. */
  maxRecordBytes?: number
  /** JOB_MAX_ATTEMPTS: the attempt that reaches it is the job's last. */
  maxAttempts: number
}): JobContext {
  const { pool, job, workerId, controller, observe = noObserve } = deps
  // A refused write aborts the run: nothing the adapter does afterwards can land. Refused because the job was
  // cancelled, it aborts as a cancel, which the adapter may act on (FHIR DELETEs its export).
  const fenced = async <T>(write: Promise<T>): Promise<T> => {
    try {
      return await write
    } catch (err) {
      if (err instanceof LeaseLostError || err instanceof JobCancelledError) controller.abort(err)
      throw err
    }
  }
  const refused = async (): Promise<never> => await fenced(Promise.reject(await refusal(pool, job.id, lost())))
  const progressOf = (p: ProgressUpdate | undefined) => ({
    pagesDone: p?.pagesDone,
    pagesTotal: p?.pagesTotal,
    percent: p?.percent,
    succeeded: p?.succeeded,
    failed: p?.failed,
  })
  const lost = () => new LeaseLostError(`job ${job.id} is no longer held by this worker`)
  // The job's requests that wait for a budget, each with its wait. The job shows the one that ends last, and no
  // note once none waits; notes are written in order, each after the last, and only when what they say changes.
  const waits = new Map<string, { reason: string, until: Date }>()
  let shown: { reason: string, until: Date } | null = null
  let waitNotes: Promise<unknown> = Promise.resolve()
  return {
    jobId: job.id,
    clientId: job.clientId,
    resource: job.resource,
    params: job.params as Record<string, unknown>,
    payload: job.payload ?? null,
    checkpoint: job.checkpoint ?? null,
    signal: controller.signal,
    lastAttempt: job.attempts >= deps.maxAttempts,
    log: deps.log,
    async savePage (page, records, checkpoint, progress) {
      controller.signal.throwIfAborted()
      // Checked here, the one path every adapter's records take: no upstream stores a record clients cannot read.
      if (deps.maxRecordBytes !== undefined) checkRecordSizes(records, deps.maxRecordBytes)
      const inserted = await fenced(savePage(pool, { jobId: job.id, workerId, page, records, checkpoint, progress: progressOf(progress) }))
      observe.recordsStored(job.upstream, inserted)
      // Wakes the readers that follow the job, on every replica; not awaited, as the page is saved whatever becomes
      // of it. One lost is caught up by the next page, the job's end, or the readers' own re-check (result-waits.ts).
      notifyPageSaved(pool, job.id).catch((err: Error) => {
        deps.log.debug({ err: err.message }, 'could not notify that a page was saved')
      })
    },
    async saveCheckpoint (checkpoint, progress) {
      // On shutdown the lease is still ours until the worker releases the job: a checkpoint the adapter
      // saves on its way out (a task id the upstream just accepted) must land, or the next attempt would
      // send that work again.
      if (!(controller.signal.reason instanceof ShutdownError)) controller.signal.throwIfAborted()
      await fenced(savePage(pool, { jobId: job.id, workerId, page: null, records: [], checkpoint, progress: progressOf(progress) }))
    },
    async setUpstreamInfo (info) {
      controller.signal.throwIfAborted()
      const held = await mergeUpstreamInfo(pool, job.id, workerId, info)
      if (!held) await refused()
    },
    reportWait (waiter, wait) {
      if (wait === null) waits.delete(waiter)
      else waits.set(waiter, wait)
      const latest = [...waits.values()].reduce<{ reason: string, until: Date } | null>((a, w) => a === null || w.until > a.until ? w : a, null)
      if (latest === shown || (latest !== null && shown !== null && latest.reason === shown.reason && latest.until.getTime() === shown.until.getTime())) return
      shown = latest
      waitNotes = waitNotes.then(() => setJobWait(pool, job.id, workerId, latest)).catch((err: Error) => {
        deps.log.debug({ err: err.message }, 'could not note what the job waits for')
      })
    },
    async park ({ key, timeoutSeconds }) {
      controller.signal.throwIfAborted()
      const { held } = await deps.endings.parked(job, workerId, { key, timeoutSeconds })
      if (!held) await refused()
      return parked
    },
  }
}
