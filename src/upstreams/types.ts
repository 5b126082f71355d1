/**
 * What the gateway knows about one upstream (its definition, listed in registry.ts) and what it shares with the
 * upstream's adapter and simulator. The engine↔adapter contract itself is src/contract/adapter.ts.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { z } from 'zod'
import type { JobContext, UpstreamAdapter } from '../contract/adapter.js'
import type { WebhookHandler } from '../contract/webhook.js'
import type { CredentialStore } from './credential-store.js'
import type { FaultTargetFactory } from './simulator-kit/fault-target.js'
import type { UpstreamClient } from './http.js'
import type { BudgetStore, BudgetTaker } from './request-budget.js'

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

/**
 * The resources of an upstream whose every resource is a read described by its params schema, a sentence and an
 * example (DrChrono, OCL, FHIR): one entry per schema.
 */
export function readResources<R extends string> (
  params: Record<R, z.ZodObject>, descriptions: Record<R, string>, examples: Partial<Record<R, Record<string, unknown>>>
): Record<R, ResourceSpec> {
  const entries = (Object.entries(params) as Array<[R, z.ZodObject]>).map(([resource, schema]) =>
    [resource, { description: descriptions[resource], params: schema, example: examples[resource] ?? {} }])
  return Object.fromEntries(entries) as Record<R, ResourceSpec>
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
  /** The upstream's own name for people (`DrChrono`), in the API's description. */
  title: string
  /**
   * Request headers that carry this upstream's secrets when they reach the gateway (its simulator's API key
   * header), besides `Authorization`: every log line shows them redacted. A webhook's signature header is added
   * from {@link WebhookHandler.signatureHeader}. Declare `[]` when there are none.
   */
  secretHeaders: readonly string[]
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
    /** The simulator served for the fault campaign, which fires at every registered upstream. */
    faultTarget: FaultTargetFactory
  }
  createAdapter (settings: Settings, client: UpstreamClient, services: UpstreamServices): UpstreamAdapter
  /** Present for webhook-completed upstreams. */
  webhook?: WebhookHandler<Settings>
}
