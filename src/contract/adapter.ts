/**
 * The contract between the job engine and the adapters: what a running job offers its adapter, and what an
 * adapter offers the engine. Neither side imports the other; both import this.
 *
 * Terminology
 * - job: one client request to read from (or write to) one upstream resource; a row in `jobs`.
 * - attempt: one run of a job by a worker. A job whose worker dies is attempted again by another.
 * - lease: a worker's time-limited claim on a running job; heartbeats renew it. A job whose lease
 *   expired may be claimed by any worker, and the old worker can no longer write to it.
 * - page: a numbered batch of results that an adapter saves at once. Saving a page again is harmless.
 * - checkpoint: the adapter's own JSON state, saved with each page and handed back when a job resumes.
 * - result: one record of a job, kept as the upstream's JSON text, ordered by (page, position).
 * - upstream: a remote system the gateway talks to (drchrono, cliniko, clinia, ocl, metriport, fhir).
 * - adapter: the module that maps a job onto one upstream's protocol. It never touches the database,
 *   Fastify or another adapter: it talks to its upstream through the shared client and to the engine
 *   through its {@link JobContext}.
 * - simulator: a strict local stand-in for an upstream, served over real HTTP, for sandbox mode and tests.
 */
import type { Logger } from 'pino'
import type { BudgetWait } from '../lib/budget-windows.js'

/** One record as the upstream wrote it: JSON text, or its UTF-8 bytes (a view of the page it came in). */
export type RecordText = string | Uint8Array

/**
 * A page's records as spans of one buffer, with no object per record: record i is `bytes[starts[i], ends[i])`, the
 * upstream's UTF-8 bytes. A page of a thousand records as views would be a thousand heap objects, which live (and
 * are promoted into V8's old generation) for as long as the page waits to be saved; spans are three.
 */
export interface RecordSpans {
  readonly bytes: Uint8Array
  readonly starts: Int32Array
  readonly ends: Int32Array
  /** How many records (the arrays may be longer). */
  readonly length: number
}

/** What a page of records is handed over as: each record on its own, or spans of one buffer (records.ts reads both). */
export type PageRecords = readonly RecordText[] | RecordSpans

/** Progress an adapter reports; the engine counts stored records itself. */
export interface ProgressUpdate {
  pagesDone?: number
  pagesTotal?: number | null
  /** 0..100; when omitted the engine derives it from pagesDone / pagesTotal. */
  percent?: number | null
  /** Write jobs: operations the upstream applied, and operations it refused. */
  succeeded?: number | null
  failed?: number | null
}

/** Returned by {@link JobContext.park}: the job now waits for a webhook; `run` returns it. */
export interface Parked { readonly parked: true }

/** What a running job offers its adapter. */
export interface JobContext<Params = Record<string, unknown>, Checkpoint = unknown> {
  readonly jobId: string
  /** The client that owns the job: request budgets are shared fairly between clients. */
  readonly clientId: string
  readonly resource: string
  readonly params: Params
  /** The write payload of write jobs (e.g. Clinia `operations`), null for reads. */
  readonly payload: unknown
  /** The checkpoint saved by an earlier attempt, or null on the first. */
  readonly checkpoint: Checkpoint | null
  /** Aborted on cancel, on shutdown and when the lease is lost: pass it to every upstream request. */
  readonly signal: AbortSignal
  /**
   * This is the job's last attempt (JOB_MAX_ATTEMPTS): if `run` throws anything but an interruption (cancel,
   * shutdown, a lost lease), the job fails with `internal_error` instead of being tried again. An adapter whose
   * upstream keeps work running for the job (an export) may release it then, as it does when the upstream failed it.
   */
  readonly lastAttempt: boolean
  /** A logger bound to the job. Never log tokens or record contents. */
  readonly log: Logger
  /**
   * Stores one page of records (the upstream's JSON text of each) together with the new checkpoint and
   * progress, in one transaction. Pages are numbered 1, 2, 3, … in the order a client reads them, and may be saved
   * in any order: a reader of a running job (`?partial=true`) is served pages 1..n once none of them is missing.
   * A page saved twice keeps its first copy, so a resumed job never stores a record twice. Throws (and aborts the
   * signal) when the job's lease was lost.
   */
  savePage (page: number, records: PageRecords, checkpoint: Checkpoint, progress?: ProgressUpdate): Promise<void>
  /** Saves checkpoint and progress without records, e.g. an upstream task id right after submitting. */
  saveCheckpoint (checkpoint: Checkpoint, progress?: ProgressUpdate): Promise<void>
  /** Facts worth showing on the job (OCL lastUpdated, a Metriport requestId): merged into `upstreamInfo`. */
  setUpstreamInfo (info: Record<string, unknown>): Promise<void>
  /**
   * For webhook-completed upstreams: the job waits, without a worker, until the upstream's webhook names `key`
   * (see {@link WebhookHandler}), or fails with `upstream_timeout` after `timeoutSeconds`. `run` returns the
   * result at once.
   */
  park (opts: { key: string, timeoutSeconds: number }): Promise<Parked>
  /**
   * What the job waits for (a request budget) and until when, shown in its `X-Progress`; null once it goes on.
   * Fire and forget: a failed write only leaves the note stale.
   */
  reportWait (waiter: string, wait: BudgetWait | null): void
}

/** An adapter bound to its settings: runs jobs against one upstream. */
export interface UpstreamAdapter {
  /** Resolves when the job's work is done, or with {@link Parked} when a webhook will finish it. */
  run (ctx: JobContext): Promise<void | Parked>
  /**
   * Resolves once work the adapter does for all its jobs has settled (a token refresh under way: its answer is
   * the only copy of the rotated tokens). Called on shutdown, after the jobs stopped and before the client closes.
   */
  drain? (): Promise<void>
}
