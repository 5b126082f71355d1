/**
 * What the engine and the routes report as they work. The metrics module implements it; code built without
 * metrics (unit tests constructing a Worker) gets {@link noObserve}, so reporting never needs a null check.
 * Kept free of prom-client so the engine does not depend on how metrics are exported.
 */

/** How a job ended. `expired` is not an end of a run: the sweeper reports it as results expiring. */
export type JobOutcome = 'completed' | 'failed' | 'cancelled'

/** What a webhook delivery did: `ping` needed no job, `rejected` failed its signature or shape. */
export type WebhookOutcome = 'applied' | 'duplicate' | 'stored' | 'rejected' | 'ping'

/** How a completion callback's attempt ended: `retrying` failed with attempts left, `failed` with none (or a 410). */
export type CallbackOutcome = 'delivered' | 'retrying' | 'failed'

export interface Observe {
  /**
   * A job reached a terminal state. `durationSeconds` runs from its first start (claim) to now, resumes and
   * webhook waits included; null when it never started (a queued job cancelled). `code` only for failures.
   */
  jobFinished (e: { upstream: string, outcome: JobOutcome, code?: string | undefined, durationSeconds: number | null }): void
  /** Result records newly stored (replayed pages insert nothing, so count nothing). */
  recordsStored (upstream: string, count: number): void
  /** Completed jobs the sweeper marked expired. */
  jobsExpired (count: number): void
  /** Result records the sweeper deleted (in the stored pages it deleted). */
  resultRowsDeleted (count: number): void
  /** One sweeper pass ended (done or failed), after this many seconds. */
  sweepFinished (seconds: number): void
  webhookDelivery (upstream: string, outcome: WebhookOutcome): void
  /** One attempt to deliver a completion callback ended (engine/callbacks.ts). */
  callbackDelivery (outcome: CallbackOutcome): void
}

/** Reports nowhere. */
export const noObserve: Observe = Object.freeze({
  jobFinished () {},
  recordsStored () {},
  jobsExpired () {},
  resultRowsDeleted () {},
  sweepFinished () {},
  webhookDelivery () {},
  callbackDelivery () {},
})

/** Seconds from a job's first start to now; null when it never started. Clock skew never makes it negative. */
export function secondsSince (startedAt: Date | null): number | null {
  return startedAt === null ? null : Math.max(0, (Date.now() - startedAt.getTime()) / 1000)
}
