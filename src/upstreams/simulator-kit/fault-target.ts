/**
 * What an upstream's simulator offers the fault campaign (test/faults/upstream-faults.test.ts): itself served on
 * loopback with seeded wire faults, the gateway variables that point at it, job bodies, and the exact records each
 * job must end with. Each upstream's definition declares one (`simulator.faultTarget`), so a registered upstream
 * cannot be left out of the campaign.
 */
import type { FastifyPluginAsync } from 'fastify'
import { serveSimulator } from './server.js'
import { WireFaults, type WireFaultKind } from './wire-faults.js'

/** As much of a job's view (docs/API.md) as a target reads to know what the job must have stored. */
export interface FaultJobView {
  id: string
  status: string
  error: { code: string, message: string } | null
  upstreamInfo: Record<string, unknown> | null
}

/** One upstream under fire. */
export interface FaultTarget {
  name: string
  /** The simulator's wire faults (armed by the campaign). */
  wire: WireFaults
  /** Gateway environment variables that point the upstream at this simulator, with short waits. */
  env: Record<string, string>
  /** The upstream's own 429 answer, `n` times in a row. */
  throttle (n: number): void
  /** 429s answered so far. */
  throttled (): number
  /** The i-th job's body; bodies differ, so that no two jobs are deduplicated into one. */
  body (i: number): Record<string, unknown>
  /** What the simulator holds for the job, as the text the gateway must store, in order; null when it holds nothing. */
  expected (job: FaultJobView, body: Record<string, unknown>, stored: readonly string[]): string[] | null
  /** Whether a failed job keeps records a client may read (Clinia's receipts; docs/API.md). */
  keepsFailedRecords: boolean
  /** A job that stores its first page after `after` requests, to be spoiled in the middle; null when it has one step. */
  partial: { after: number, body: (i: number) => Record<string, unknown> } | null
  /**
   * How a job ends when `kind` strikes its first answers, where the protocol says otherwise than the rule (retried
   * faults complete; truncated, garbled or wrong-shaped answers fail with invalid_upstream_response). Values are
   * `completed` or `failed <code>`.
   */
  outcomes?: Partial<Record<WireFaultKind, string>>
  /** Told the gateway's base URL once it listens (an upstream that answers by webhook sends them there). */
  connect? (gatewayUrl: string): void
  close (): Promise<void>
}

/** Starts an upstream's fault target; `seed` seeds its wire faults. */
export type FaultTargetFactory = (seed: number) => Promise<FaultTarget>

/** A simulator served alone on loopback with wire faults seeded by `seed`: what every fault target starts with. */
export async function serveUnderFire<State, Options extends { state?: State }> (
  plugin: FastifyPluginAsync<Options>, state: State, seed: number
): Promise<{ wire: WireFaults, url: string, close (): Promise<void> }> {
  const wire = new WireFaults({ seed })
  const server = await serveSimulator(plugin, state, { wireFaults: wire })
  return { wire, url: server.url, close: () => server.close() }
}
