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
import type { UpstreamClient } from './http.js'

/** Stable error codes a job can fail with. Clients branch on these, never on messages. */
export type JobErrorCode =
  | 'upstream_unauthorized'
  | 'upstream_unavailable'
  | 'upstream_rate_limited'
  | 'upstream_rejected'
  | 'upstream_not_found'
  | 'upstream_failed'
  | 'upstream_timeout'
  | 'upstream_pagination_loop'
  | 'invalid_upstream_response'
  | 'upstream_not_configured'
  | 'internal_error'

/** A failure that ends a job with a stable code. Thrown by adapters and the shared client. */
export class UpstreamError extends Error {
  constructor (
    readonly code: JobErrorCode,
    message: string,
    readonly upstreamStatus: number | null = null,
  ) {
    super(message)
    this.name = 'UpstreamError'
  }
}

/** Progress an adapter reports; the engine counts stored records itself. */
export interface ProgressUpdate {
  pagesDone?: number
  pagesTotal?: number | null
  /** 0..100; when omitted the engine derives it from pagesDone / pagesTotal. */
  percent?: number | null
}

/** What a running job offers its adapter. */
export interface JobContext<Params = Record<string, unknown>, Checkpoint = unknown> {
  readonly jobId: string
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
  savePage (page: number, records: readonly string[], checkpoint: Checkpoint, progress?: ProgressUpdate): Promise<void>
  /** Saves checkpoint and progress without records, e.g. an upstream task id right after submitting. */
  saveCheckpoint (checkpoint: Checkpoint, progress?: ProgressUpdate): Promise<void>
  /** Facts worth showing on the job (OCL lastUpdated, a Metriport requestId): merged into `upstreamInfo`. */
  setUpstreamInfo (info: Record<string, unknown>): Promise<void>
}

/** One resource of an upstream with its params schema. */
export interface ResourceSpec {
  description: string
  /** A strict zod object: unknown keys are errors. */
  params: z.ZodObject
  /** An example body's params for the OpenAPI document and Swagger UI's "Try it out". */
  example?: Record<string, unknown>
}

/** An adapter bound to its settings: runs jobs against one upstream. */
export interface UpstreamAdapter {
  run (ctx: JobContext): Promise<void>
}

/** Where an upstream's adapter sends requests, as resolved at start-up. */
export type UpstreamMode = 'live' | 'sandbox' | 'unconfigured'

/** Everything the gateway knows about one upstream; the registry lists one per upstream. */
export interface UpstreamDefinition<Env extends Record<string, unknown> = Record<string, unknown>, Settings = unknown> {
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
    plugin: FastifyPluginAsync
    /** Settings for an adapter talking to the simulator mounted at `baseUrl`. */
    sandboxSettings (baseUrl: string): Settings
  }
  createAdapter (settings: Settings, client: UpstreamClient): UpstreamAdapter
}
