/**
 * Completion callbacks: when a job that asked for one ends, its view is POSTed to the client's URL, signed as
 * Standard Webhooks v1 with the client's CALLBACK_SECRETS secret (docs/API.md, "Completion callbacks").
 *
 * The outbox is the job's own row (db/sql/callbacks.ts): the statement that ends a job makes its callback due in
 * the same transaction, so a gateway that dies right after a job ends still delivers its callback once it (or any
 * replica) runs again. The deliverer claims due callbacks with a lease (FOR UPDATE SKIP LOCKED: one replica per
 * attempt), sends each with a bounded timeout, and records the result; a failed attempt is retried on
 * CALLBACK_RETRY_SCHEDULE_SECONDS, a 410 stops the retries. Every attempt of a callback carries the same
 * `webhook-id`, derived from the job's id, and the job's view as it reads at the moment of sending.
 *
 * States: created → active → stopping → stopped. It is woken in-process when a job ends, and polls for the rest
 * (callbacks of jobs other replicas ended, retries coming due). `stop()` is idempotent and bounded: attempts under
 * way are aborted and their callbacks given back, due again at once, uncounted.
 */
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import type { Logger } from 'pino'
import type { CallbackSender, CallbackSendResult } from '../contract/callback.js'
import { claimDueCallbacks, recordCallbackAttempt, releaseCallback, secondsToNextCallback, type CallbackAttemptResult, type ClaimedCallback } from '../db/sql/callbacks.js'
import type { JobSummary } from '../domain/job.js'
import type { CallbackSecret } from '../lib/callback-secrets.js'
import { sleep } from '../lib/time.js'
import { noObserve, type Observe } from '../metrics/observe.js'
import { notifyJobsChanged } from './notifications.js'

/** The event types, by the status a job reads when its callback is sent. An expired job had completed. */
const eventTypes: Record<string, string> = {
  completed: 'job.completed',
  expired: 'job.completed',
  failed: 'job.failed',
  cancelled: 'job.cancelled',
}

/** The `webhook-id` of a job's callback: the same on every attempt, on every replica, after any restart. */
export const callbackMessageId = (jobId: string): string => `msg_${jobId}`

/** The body of a job's callback event: `{type, timestamp, data}` with `data` the job's view. */
export function callbackEvent (job: JobSummary, view: (job: JobSummary) => unknown): string {
  return JSON.stringify({
    type: eventTypes[job.status] ?? `job.${job.status}`,
    timestamp: (job.finishedAt ?? new Date()).toISOString(),
    data: view(job),
  })
}

export interface CallbackOptions {
  /** CALLBACK_RETRY_SCHEDULE_SECONDS: the wait after each failed attempt; after the last, the callback fails. */
  retrySchedule: readonly number[]
  /** CALLBACK_TIMEOUT_SECONDS: one attempt's deadline. The lease outlasts it. */
  timeoutSeconds: number
  /** The longest wait between two looks for due callbacks (WORKER_POLL_SECONDS). */
  pollSeconds: number
  /** CALLBACK_ALLOWED_ORIGINS now: a callback whose origin was taken off it since the job was submitted is not sent. */
  allowedOrigins: readonly string[]
  /**
   * Attempts under way at once in this process (default 16). A receiver that hangs holds a slot for the timeout
   * only, and its retries are spread out by the schedule.
   */
  concurrency?: number
}

type DelivererState = 'created' | 'active' | 'stopping' | 'stopped'

export class CallbackDeliverer {
  readonly id = `callbacks-${randomUUID()}`
  private state: DelivererState = 'created'
  private readonly stopped = new AbortController()
  private wakeUp = new AbortController()
  private loop: Promise<void> | null = null
  private readonly inFlight = new Set<Promise<void>>()
  private readonly concurrency: number
  private readonly leaseSeconds: number

  constructor (
    private readonly pool: pg.Pool,
    private readonly sender: CallbackSender,
    /** The client's signing secret (CALLBACK_SECRETS), by client name. */
    private readonly secretOf: (clientId: string) => CallbackSecret | undefined,
    /** The job's public view (api/job-view.ts), given by the wiring. */
    private readonly view: (job: JobSummary) => unknown,
    private readonly options: CallbackOptions,
    private readonly log: Logger,
    private readonly observe: Observe = noObserve
  ) {
    this.concurrency = options.concurrency ?? 16
    this.leaseSeconds = Math.ceil(options.timeoutSeconds * 2) + 10
  }

  get status (): DelivererState { return this.state }

  start (): void {
    if (this.state !== 'created') return
    this.state = 'active'
    this.loop = this.run()
  }

  /** Looks for due callbacks now (a job ended in this process, an attempt finished). */
  wake (): void {
    this.wakeUp.abort()
  }

  private async run (): Promise<void> {
    while (this.state === 'active') {
      const wakeUp = this.wakeUp = new AbortController()
      const free = this.concurrency - this.inFlight.size
      let claimed: ClaimedCallback[] = []
      if (free > 0) {
        claimed = await claimDueCallbacks(this.pool, this.id, this.leaseSeconds, free).catch((err: Error) => {
          this.log.warn({ err: err.message }, 'callback claim failed; retrying later')
          return []
        })
      }
      for (const callback of claimed) {
        const attempt: Promise<void> = this.attempt(callback).finally(() => {
          this.inFlight.delete(attempt)
          this.wake()
        })
        this.inFlight.add(attempt)
      }
      if (free > 0 && claimed.length === free) continue
      const waitMs = free > 0 ? await this.msToNextDue() : this.options.pollSeconds * 1000
      await sleep(waitMs, AbortSignal.any([this.stopped.signal, wakeUp.signal])).catch(() => {})
    }
    await Promise.all(this.inFlight)
  }

  /** Until the next callback comes due (at least 50 ms: another replica may be claiming it), at most a poll. */
  private async msToNextDue (): Promise<number> {
    const pollMs = this.options.pollSeconds * 1000
    const seconds = await secondsToNextCallback(this.pool).catch(() => null)
    return seconds === null ? pollMs : Math.max(50, Math.min(pollMs, seconds * 1000))
  }

  private async attempt ({ job, url }: ClaimedCallback): Promise<void> {
    let result: CallbackAttemptResult
    try {
      result = await this.send(job, url)
    } catch (err) {
      if (this.stopped.signal.aborted) {
        await releaseCallback(this.pool, job.id, this.id).catch(() => {})
        return
      }
      // A failure of the gateway's own (the view, the signature), not the receiver's: counted like any other failed
      // attempt, so that it cannot repeat unbounded with every lease.
      this.log.error({ jobId: job.id, err: (err as Error).message }, 'callback could not be prepared')
      result = this.retryOrFail(job, 'the gateway could not prepare the callback')
    }
    try {
      if (!await recordCallbackAttempt(this.pool, job.id, this.id, result)) return
    } catch (err) {
      // The database failed us: the lease runs out and the callback is due again, on this replica or another.
      this.log.warn({ jobId: job.id, err: (err as Error).message }, 'callback attempt could not be recorded; it will be tried again')
      return
    }
    const attempts = job.callbackAttempts + 1
    const outcome = result.status === 'pending' ? 'retrying' : result.status
    this.observe.callbackDelivery(outcome)
    if (result.status === 'delivered') this.log.info({ jobId: job.id, attempts }, 'callback delivered')
    else this.log.warn({ jobId: job.id, attempts, error: result.error, outcome }, result.status === 'failed' ? 'callback failed; no more attempts' : 'callback attempt failed; will retry')
    // The view shows the callback's state: every replica's cached copy of it is stale now.
    await notifyJobsChanged(this.pool, [job.id]).catch((err: Error) => {
      this.log.debug({ jobId: job.id, err: err.message }, 'could not tell the replicas that the job\'s view changed')
    })
  }

  /** A failed attempt: tried again after the schedule's next delay, or failed for good after the last. */
  private retryOrFail (job: JobSummary, error: string): CallbackAttemptResult {
    const retryInSeconds = this.options.retrySchedule[job.callbackAttempts]
    return retryInSeconds === undefined ? { status: 'failed', error } : { status: 'pending', error, retryInSeconds }
  }

  /** Signs and sends one attempt, and judges its answer. */
  private async send (job: JobSummary, url: string): Promise<CallbackAttemptResult> {
    const secret = this.secretOf(job.clientId)
    if (secret === undefined) return { status: 'failed', error: 'the client has no CALLBACK_SECRETS entry: the callback cannot be signed' }
    if (!this.options.allowedOrigins.includes(new URL(url).origin)) return { status: 'failed', error: 'the URL\'s origin is no longer in CALLBACK_ALLOWED_ORIGINS' }
    const body = callbackEvent(job, this.view)
    const messageId = callbackMessageId(job.id)
    const now = new Date()
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'bulk-gateway',
      'webhook-id': messageId,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': secret.sign(messageId, now, body),
    }
    const answer = await this.sender.send({ url, headers, body, signal: this.stopped.signal })
    const error = failure(answer, this.options.timeoutSeconds)
    if (error === null) return { status: 'delivered', error: null }
    if ('status' in answer && answer.status === 410) return { status: 'failed', error }
    return this.retryOrFail(job, error)
  }

  async stop (): Promise<void> {
    if (this.state === 'active') this.state = 'stopping'
    this.stopped.abort()
    await this.loop
    this.state = 'stopped'
  }
}

/** Why an attempt failed, in the gateway's words (never the receiver's body or the URL), or null for a 2xx. */
function failure (answer: CallbackSendResult, timeoutSeconds: number): string | null {
  if ('error' in answer) {
    switch (answer.error) {
      case 'timeout': return `no answer within ${timeoutSeconds} s`
      case 'address_refused': return 'the address is not allowed (a private or loopback address, or plain http in production; see UPSTREAM_ALLOWED_ORIGINS)'
      case 'connection_failed': return 'the connection failed'
    }
  }
  const { status } = answer
  if (status >= 200 && status < 300) return null
  if (status === 410) return 'the receiver answered 410 Gone: no more attempts'
  if (status >= 300 && status < 400) return `the receiver answered ${status}; redirects are not followed`
  return `the receiver answered ${status}`
}
