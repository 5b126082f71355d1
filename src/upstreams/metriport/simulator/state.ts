/**
 * The Metriport simulator's mutable side: runs (one per patient at a time), the webhooks it sends, and the
 * controls tests steer it with. It behaves as Metriport does, never more kindly: a webhook is sent once and
 * never retried; a delivery that is not answered 200 within ~4 s fails and disables the webhook (later
 * messages are not sent) until {@link MetriportSimulatorState.retryFailed}, Metriport's manual retry.
 */
import { randomUUID } from 'node:crypto'
import { Agent } from 'undici'
import { SANDBOX_CREDENTIALS } from '../env.js'
import { signWebhook } from '../signature.js'
import { postWebhook, type DeliveryRecord, type WebhookToSend } from './delivery.js'
import { resultBody } from './bodies.js'
import { patientIndex } from './documents.js'
import { DEFAULT_MAX_ENTRIES, keepNewest, remember } from '../../simulator-kit/bounds.js'
import { freshStats } from '../../simulator-kit/stats.js'

export type { DeliveryRecord } from './delivery.js'

/** How a simulator behaves from the start; most knobs are also methods of {@link MetriportSimulatorState}. */
export interface MetriportSimulatorOptions {
  /** Seeds the documents. Default 1. */
  seed?: number
  /** Known patients: sandboxPatientId(0 .. patientCount-1). Default 3. */
  patientCount?: number
  apiKey?: string
  webhookKey?: string
  /** Where webhooks go; a function when the receiver's port is known only later. */
  webhookUrl?: string | (() => string)
  /** Milliseconds from start to webhook; 'never' holds it until deliverNow(). Default 200. */
  delayMs?: number | 'never'
  /** Patients whose run ends with a webhook reporting status `failed`. */
  failedPatients?: readonly string[]
  /** Patients whose start is answered `{"status":"failed"}` (Metriport could not trigger the run). */
  failStartPatients?: readonly string[]
  /** Every message is delivered twice, same bytes, same messageId (a receiver must be idempotent). */
  duplicateDeliveries?: boolean
  /** The start answers only after its webhook was answered: the webhook reaches the gateway before the job parks. */
  answerAfterDelivery?: boolean
  /** How long a delivery may take before it counts as failed. Default 4000, as Metriport. */
  deliveryTimeoutMs?: number
  /** Unknown extra fields in the start answer and everywhere in the webhook (see bodies.ts). Default false. */
  extraFields?: boolean
  /**
   * Runs, delivery records and messages kept for a manual retry; beyond it the oldest is forgotten (a run still
   * processing keeps its timer and still sends its webhook). Default 1000.
   */
  maxEntries?: number
}

/** A bulk URL generation run. */
export interface SimulatedRun {
  requestId: string
  patientId: string
  metadata: Record<string, string> | undefined
  status: 'processing' | 'completed' | 'failed'
  timer: NodeJS.Timeout | undefined
}

/** Counters tests read to see what Metriport would have seen and sent, at start; reset() brings them back. */
const STATS = {
  /** Runs started (new requestIds). */
  starts: 0,
  /** Starts answered with the run already processing (same requestId). */
  stickyStarts: 0,
  /** Starts refused by API Gateway for a missing or wrong key (403). */
  unauthorized: 0,
  notFound: 0,
  badRequests: 0,
  /** Webhook requests sent, any kind. */
  deliveries: 0,
  /** Result messages not answered 200 in time (never retried automatically). */
  failedDeliveries: 0,
  /** Result messages not sent because a failed delivery had disabled the webhook. */
  suppressed: 0,
  pings: 0,
  /** Starts answered 429 (see {@link MetriportSimulatorState.throttleNext}). */
  throttled: 0,
}

export type MetriportSimulatorStats = typeof STATS

/** One simulator's runs, deliveries and controls; shared by its HTTP routes and the test that started it. */
export class MetriportSimulatorState {
  readonly options: Readonly<MetriportSimulatorOptions>
  readonly runs = new Map<string, SimulatedRun>()
  readonly deliveries: DeliveryRecord[] = []
  stats = freshStats(STATS)
  /** False after a failed delivery, as Metriport disables the webhook; retryFailed() turns it back on. */
  webhookEnabled = true
  #delay: number | 'never'
  #failed = new Set<string>()
  #failStart = new Set<string>()
  #duplicate = false
  /** Unknown extra fields in what the simulator sends; starts as the options say. */
  extraFields = false
  #throttles: Array<number | null> = []
  #webhookUrl: string | (() => string) | undefined
  /** Result messages to resend on a manual retry: failed or suppressed. */
  #unsent: Array<{ messageId: string, requestId: string, body: string }> = []
  #inFlight = new Set<Promise<unknown>>()
  #agent = new Agent({ keepAliveTimeout: 1000 })
  #closing = new AbortController()

  constructor (options: MetriportSimulatorOptions = {}) {
    this.options = options
    this.#webhookUrl = options.webhookUrl
    this.#delay = options.delayMs ?? 200
    this.reset()
  }

  get apiKey (): string { return this.options.apiKey ?? SANDBOX_CREDENTIALS.apiKey }
  get webhookKey (): string { return this.options.webhookKey ?? SANDBOX_CREDENTIALS.webhookKey }
  get seed (): number { return this.options.seed ?? 1 }
  get patientCount (): number { return this.options.patientCount ?? 3 }
  get maxEntries (): number { return this.options.maxEntries ?? DEFAULT_MAX_ENTRIES }

  /** Back to the configured options: no runs, no deliveries, zero counters, the webhook enabled. */
  reset (): void {
    for (const run of this.runs.values()) clearTimeout(run.timer)
    this.runs.clear()
    this.deliveries.length = 0
    this.stats = freshStats(STATS)
    this.webhookEnabled = true
    this.#unsent = []
    this.#delay = this.options.delayMs ?? 200
    this.#failed = new Set(this.options.failedPatients)
    this.#failStart = new Set(this.options.failStartPatients)
    this.#duplicate = this.options.duplicateDeliveries ?? false
    this.extraFields = this.options.extraFields ?? false
    this.#throttles = []
  }

  setWebhookUrl (url: string | (() => string)): void { this.#webhookUrl = url }
  /** Webhooks of runs started from now on come after `ms`, or never (until deliverNow). */
  setDelay (ms: number | 'never'): void { this.#delay = ms }
  /** The patient's runs end with a webhook reporting `failed`. */
  failPatient (patientId: string, on = true): void { if (on) this.#failed.add(patientId); else this.#failed.delete(patientId) }
  /** The patient's starts are answered `failed`. */
  failStart (patientId: string, on = true): void { if (on) this.#failStart.add(patientId); else this.#failStart.delete(patientId) }
  /** Every message is sent twice, same bytes. */
  setDuplicateDeliveries (on: boolean): void { this.#duplicate = on }

  /**
   * The next `n` starts answer 429 `{"message":"Too Many Requests"}`, as AWS API Gateway (in front of Metriport)
   * throttles: with no Retry-After by default, since API Gateway sends none, or with `retryAfterSeconds`.
   */
  throttleNext (n: number, retryAfterSeconds: number | null = null): void {
    this.#throttles = Array.from({ length: n }, () => retryAfterSeconds)
  }

  /** Whether this start is throttled, and its Retry-After (null: none); counted. */
  takeThrottle (): { retryAfterSeconds: number | null } | null {
    if (this.#throttles.length === 0) return null
    this.stats.throttled++
    return { retryAfterSeconds: this.#throttles.shift() as number | null }
  }

  isKnownPatient (patientId: string): boolean { return patientIndex(patientId, this.patientCount) >= 0 }

  /** The patient's processing run, if any. */
  processingRun (patientId: string): SimulatedRun | undefined {
    for (const run of this.runs.values()) if (run.patientId === patientId && run.status === 'processing') return run
    return undefined
  }

  /**
   * POST …/download-url/bulk for a known patient: the processing run (sticky), or a new one whose webhook is
   * scheduled. `delivered` settles when the new run's webhook has been answered (or at once).
   */
  start (patientId: string, metadata: Record<string, string> | undefined): { status: 'processing' | 'failed', requestId: string, delivered: Promise<void> } {
    const current = this.processingRun(patientId)
    if (current !== undefined) {
      this.stats.stickyStarts++
      return { status: 'processing', requestId: current.requestId, delivered: Promise.resolve() }
    }
    const run: SimulatedRun = { requestId: randomUUID(), patientId, metadata, status: 'processing', timer: undefined }
    remember(this.runs, run.requestId, run, this.maxEntries)
    this.stats.starts++
    if (this.#failStart.has(patientId)) {
      run.status = 'failed'
      return { status: 'failed', requestId: run.requestId, delivered: Promise.resolve() }
    }
    if (this.#delay === 'never') return { status: 'processing', requestId: run.requestId, delivered: Promise.resolve() }
    const delay = this.#delay
    const delivered = new Promise<void>(resolve => {
      run.timer = setTimeout(() => { this.#finish(run).then(() => resolve(), () => resolve()) }, delay)
    })
    return { status: 'processing', requestId: run.requestId, delivered }
  }

  /** Finishes processing runs now (one, or all) and sends their webhooks; resolves with the deliveries made. */
  async deliverNow (requestId?: string): Promise<DeliveryRecord[]> {
    const runs = [...this.runs.values()].filter(r => r.status === 'processing' && (requestId === undefined || r.requestId === requestId))
    const sent = await Promise.all(runs.map(run => { clearTimeout(run.timer); return this.#finish(run) }))
    return sent.flat()
  }

  /** Sends a ping (as when the webhook URL is saved); Metriport wants `{"pong": id}` within 2 s. */
  async ping (): Promise<DeliveryRecord> {
    this.stats.pings++
    const id = randomUUID()
    const body = JSON.stringify({ ping: id, meta: { messageId: randomUUID(), when: new Date().toISOString(), type: 'ping' } })
    return this.#send({ kind: 'ping', messageId: null, requestId: null, body })
  }

  /** A result message for the run (or a made-up one) signed with the wrong key, as a forger would send it. */
  async sendForged (requestId?: string): Promise<DeliveryRecord> {
    const run = requestId === undefined ? undefined : this.runs.get(requestId)
    const body = this.#resultBody(run ?? { requestId: requestId ?? randomUUID(), patientId: 'unknown', metadata: undefined, status: 'processing', timer: undefined }, randomUUID())
    return this.#send({ kind: 'forged', messageId: null, requestId: requestId ?? null, body, signature: signWebhook(body, `not-${this.webhookKey}`) })
  }

  /** Sends any bytes, correctly signed unless `signature` is given (e.g. malformed JSON with a valid signature). */
  async send (body: string, opts: { signature?: string | null } = {}): Promise<DeliveryRecord> {
    return this.#send({ kind: 'raw', messageId: null, requestId: null, body, signature: opts.signature })
  }

  /** Metriport's manual retry: enables the webhook and resends the failed or suppressed messages (same messageId). */
  async retryFailed (): Promise<DeliveryRecord[]> {
    this.webhookEnabled = true
    const unsent = this.#unsent
    this.#unsent = []
    const out: DeliveryRecord[] = []
    for (const m of unsent) out.push(...await this.#deliverResult(m))
    return out
  }

  /** Resolves when every webhook in flight has been answered or has failed. */
  async settled (): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
  }

  /** Stops timers and in-flight deliveries. */
  async close (): Promise<void> {
    for (const run of this.runs.values()) clearTimeout(run.timer)
    this.#closing.abort()
    await Promise.allSettled([...this.#inFlight])
    await this.#agent.destroy()
  }

  async #finish (run: SimulatedRun): Promise<DeliveryRecord[]> {
    if (run.status !== 'processing') return []
    // Metriport records the run's end before sending the webhook: a start from now on begins a new run.
    run.status = this.#failed.has(run.patientId) ? 'failed' : 'completed'
    const messageId = randomUUID()
    return this.#deliverResult({ messageId, requestId: run.requestId, body: this.#resultBody(run, messageId) })
  }

  async #deliverResult (m: { messageId: string, requestId: string, body: string }): Promise<DeliveryRecord[]> {
    if (!this.webhookEnabled) {
      this.stats.suppressed++
      this.#unsent.push(m)
      keepNewest(this.#unsent, this.maxEntries)
      return []
    }
    const out: DeliveryRecord[] = []
    for (let i = 0; i < (this.#duplicate ? 2 : 1); i++) {
      const record = await this.#send({ kind: 'result', ...m })
      out.push(record)
      if (!record.ok) {
        this.stats.failedDeliveries++
        this.webhookEnabled = false
        this.#unsent.push(m)
        keepNewest(this.#unsent, this.maxEntries)
        break
      }
    }
    return out
  }

  #resultBody (run: SimulatedRun, messageId: string): string {
    const facts = { requestId: run.requestId, patientId: run.patientId, metadata: run.metadata, failed: run.status === 'failed' }
    return resultBody(facts, messageId, { seed: this.seed, patientCount: this.patientCount, now: new Date(), extraFields: this.extraFields })
  }

  #send (d: WebhookToSend): Promise<DeliveryRecord> {
    const task = this.#post(d)
    this.#inFlight.add(task)
    return task.finally(() => this.#inFlight.delete(task))
  }

  async #post (d: WebhookToSend): Promise<DeliveryRecord> {
    this.stats.deliveries++
    const url = typeof this.#webhookUrl === 'function' ? this.#webhookUrl() : this.#webhookUrl
    const record = await postWebhook(d, {
      url,
      webhookKey: this.webhookKey,
      agent: this.#agent,
      timeoutMs: this.options.deliveryTimeoutMs ?? 4000,
      closing: this.#closing.signal,
    })
    this.deliveries.push(record)
    keepNewest(this.deliveries, this.maxEntries)
    return record
  }
}
