/**
 * The sandbox: the simulators of every upstream in sandbox mode, on a listener of their own bound to 127.0.0.1 on
 * an ephemeral port, each under /<name>. Never on the gateway's public port: a simulator is a stand-in whose
 * state a caller could fill or forge (a Metriport webhook for another client's job). Each simulator checks secrets
 * drawn here for this process, which only it and its adapter's sandbox settings receive.
 */
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import type { AnyUpstream } from './registry.js'
import type { SandboxCredentials } from './types.js'

/** The sandbox listener, running. */
export interface RunningSandbox {
  /** Its base URL, e.g. http://127.0.0.1:41234; a simulator is under `${url}/${name}`. */
  url: string
  /** Sandbox settings of each upstream served, by name: they point the adapter at its simulator, with its secrets. */
  settings: ReadonlyMap<string, unknown>
  close (): Promise<void>
}

/** A secret as random as a real upstream key, in hex: no character any upstream's key format gives meaning to. */
function drawCredentials (names: readonly string[]): SandboxCredentials {
  return Object.fromEntries(names.map(name => [name, randomBytes(24).toString('hex')]))
}

/**
 * Starts the simulators of `definitions` on 127.0.0.1. `gatewayUrl` is where a simulator reaches the gateway
 * (Metriport's webhooks), asked for only once the gateway listens.
 */
export async function startSandbox (definitions: readonly AnyUpstream[], gatewayUrl: () => string): Promise<RunningSandbox> {
  // Stalled or streaming answers (an export download) must not hold the gateway's close up.
  const app = Fastify({ logger: false, forceCloseConnections: true })
  const served = definitions.map(definition => ({ definition, credentials: drawCredentials(definition.simulator.credentials) }))
  for (const { definition, credentials } of served) {
    await app.register(definition.simulator.plugin, { prefix: `/${definition.name}`, gatewayUrl, credentials })
  }
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  const url = `http://127.0.0.1:${port}`
  const settings = new Map(served.map(({ definition: d, credentials }) => [d.name, d.simulator.sandboxSettings(`${url}/${d.name}`, credentials)]))
  return { url, settings, close: () => app.close() }
}
