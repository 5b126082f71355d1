/**
 * The contract between the job engine and the upstreams.
 *
 * Terminology
 * - job: one client request to read from (or write to) one upstream resource; a row in `jobs`.
 * - attempt: one run of a job by a worker. A job whose worker dies is attempted again by another.
 * - lease: a worker's time-limited claim on a running job; heartbeats renew it. A job whose lease
 *   expired may be claimed by any worker, and the old worker can no longer write to it.
 * - page: a numbered batch of results that an adapter saves at once. Saving a page again is harmless.
 * - checkpoint: the adapter's own JSON state, saved with each page and handed back when a job resumes.
 * - result: one record of a job, kept as the upstream's JSON text, ordered by (page, position).
 * - upstream: a remote system the gateway talks to (drchrono, cliniko, clinia, ocl, metriport).
 * - adapter: the module that maps a job onto one upstream's protocol. It never touches the database,
 *   Fastify or another adapter: it talks to its upstream through the shared client and to the engine
 *   through its {@link JobContext}.
 * - simulator: a strict local stand-in for an upstream, served over real HTTP, for sandbox mode and tests.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Logger } from 'pino'
import type { z } from 'zod'
import type { CredentialStore } from './credential-store.js'
import type { JobErrorCode } from './errors.js'
import type { UpstreamClient } from './http.js'
import type { BudgetStore, BudgetTaker, BudgetWait } from './request-budget.js'


/** One record as the upstream wrote it: JSON text, or its UTF-8 bytes (a view of the page it came in). */
export type RecordText = string | Uint8Array

export { UpstreamError, type JobErrorCode } from './errors.js'

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
  /** A logger bound to the job. Never log tokens or record contents. */
  readonly log: Logger
  /**
   * Stores one page of records (the upstream's JSON text of each) together with the new checkpoint and
   * progress, in one transaction. A page saved twice keeps its first copy, so a resumed job never stores a
   * record twice. Throws (and aborts the signal) when the job's lease was lost.
   */
  savePage (page: number, records: readonly RecordText[], checkpoint: Checkpoint, progress?: ProgressUpdate): Promise<void>
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

/** The taker of a budget for one job: its client, and its X-Progress told while it waits. */
export function budgetTaker (ctx: Pick<JobContext, 'clientId' | 'reportWait'>): BudgetTaker {
  return { clientId: ctx.clientId, onWait: (waiter, wait) => ctx.reportWait(waiter, wait) }
}

/**
 * What the gateway shares with adapters beyond the HTTP client: state every replica must see the same way,
 * kept in PostgreSQL (adapter tests use the in-memory stores).
 */
export interface UpstreamServices {
  /** Request budgets per set of credentials, across jobs and replicas. */
  budgets: BudgetStore
  /** Credentials the upstream rotates (OAuth tokens), stored encrypted, updated under a lock. */
  credentials: CredentialStore
}

/** One resource of an upstream with its params schema. */
export interface ResourceSpec {
  description: string
  /** A strict zod object: unknown keys are errors. */
  params: z.ZodObject
  /** An example body's params for the OpenAPI document and Swagger UI's "Try it out". */
  example?: Record<string, unknown>
  /**
   * Write resources: the body field carrying the payload (Clinia's `operations`) and its schema. The adapter
   * receives `{ [field]: value }` as `ctx.payload`.
   */
  payload?: { field: string, schema: z.ZodType, example?: unknown }
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

/** What one webhook delivery means for the gateway, as the upstream's handler reads it. */
export type WebhookResult =
  /** Nothing to do for any job (a ping, an event type the gateway ignores): answer this. */
  | { kind: 'reply', status: number, body: unknown }
  /** Finish the job parked under `key`: store `records` and complete it, or fail it with `error`. */
  | {
    kind: 'deliver'
    /** The upstream's id of this delivery: a second delivery with the same id changes nothing. */
    messageId: string
    key: string
    outcome: { records: readonly string[] } | { error: { code: JobErrorCode, message: string } }
    reply: { status: number, body: unknown }
  }

/** A client error in a webhook delivery (bad signature, malformed body): answered as problem+json. */
export class WebhookRejected extends Error {
  constructor (readonly status: number, message: string) {
    super(message)
    this.name = 'WebhookRejected'
  }
}

/** An upstream that finishes jobs by calling the gateway back at `POST /webhooks/<name>`. */
export interface WebhookHandler<Settings = unknown> {
  /**
   * The header the upstream signs deliveries in (lower case) and the form a well-formed value has. A delivery
   * without it is refused from its headers, before a byte of its body is read.
   */
  readonly signatureHeader: { name: string, format: RegExp }
  /** The largest body a genuine delivery has, in bytes: beyond it 413, from `Content-Length` when announced. */
  readonly maxBodyBytes: number
  /**
   * Verifies (before parsing anything) and interprets one delivery. `rawBody` is the exact bytes received.
   * Throws {@link WebhookRejected} for a delivery that must be refused.
   */
  receive (input: { rawBody: Buffer, headers: Record<string, string | string[] | undefined>, settings: Settings, receivedAt: Date }): WebhookResult
}

/**
 * A sandbox simulator's secrets (API keys, tokens, webhook keys) by the names its upstream gives them: drawn at
 * random for each process, given to the simulator and to the adapter's sandbox settings, and to nobody else.
 */
export type SandboxCredentials<Name extends string = string> = Readonly<Record<Name, string>>

/** What the gateway hands a simulator it serves in sandbox mode (on its own loopback listener). */
export interface SimulatorMountOptions<Name extends string = string> {
  /** The gateway's own base URL (known once it listens): where a simulator sends webhooks. */
  gatewayUrl (): string
  /** The secrets the simulator must ask for, drawn for this process. */
  credentials: SandboxCredentials<Name>
}

/** Where an upstream's adapter sends requests, as resolved at start-up. */
export type UpstreamMode = 'live' | 'sandbox' | 'unconfigured'

/** Everything the gateway knows about one upstream; the registry lists one per upstream. */
export interface UpstreamDefinition<Env extends Record<string, unknown> = Record<string, unknown>, Settings = unknown, Secret extends string = string> {
  name: string
  kind: 'read' | 'write'
  description: string
  resources: Record<string, ResourceSpec>
  /** Its environment variables, merged into the gateway's one configuration schema. */
  env: z.ZodType<Env>
  /** Settings from the environment, or null when the upstream is not configured. */
  settingsFromEnv (env: Env): Settings | null
  /** The built-in simulator: a Fastify plugin and the settings that point the adapter at it. */
  simulator: {
    /** The names of the secrets the simulator checks; the gateway draws a random value for each, per process. */
    credentials: readonly Secret[]
    plugin: FastifyPluginAsync<SimulatorMountOptions<Secret>>
    /** Settings for an adapter talking to the simulator served at `baseUrl` with these secrets. */
    sandboxSettings (baseUrl: string, credentials: SandboxCredentials<Secret>): Settings
  }
  createAdapter (settings: Settings, client: UpstreamClient, services: UpstreamServices): UpstreamAdapter
  /** Present for webhook-completed upstreams. */
  webhook?: WebhookHandler<Settings>
}
