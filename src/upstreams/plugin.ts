/**
 * Resolves every registered upstream at boot: live when its configuration is present, served by its simulator
 * in sandbox mode (on the sandbox's own loopback listener, see sandbox.ts), unconfigured otherwise. Adapters are
 * created on first use.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { responseLimitOptions, type Config } from '../config.js'
import { UpstreamClient } from './http.js'
import { MemoryCredentialStore } from './credential-store.js'
import { variablesOf, type AnyUpstream } from './registry.js'
import { startSandbox } from './sandbox.js'
import type { UpstreamMode, UpstreamServices } from './types.js'
import type { UpstreamAdapter } from '../contract/adapter.js'
import { PgBudgetStore } from '../db/budget-store.js'
import { PgCredentialStore } from '../db/credential-store.js'
import { tokenKeySource } from '../db/token-keys.js'

export interface ResolvedUpstream { definition: AnyUpstream, mode: UpstreamMode }

declare module 'fastify' {
  interface FastifyInstance {
    upstreams: {
      list: ResolvedUpstream[]
      /** The adapter for an upstream, or undefined when it is unconfigured. */
      adapterFor (name: string): UpstreamAdapter | undefined
      /** The settings an upstream runs with (live or sandbox), or undefined when it is unconfigured. */
      settingsFor (name: string): unknown
      client: UpstreamClient
      /** Waits for the adapters' shared work in flight (see {@link UpstreamAdapter.drain}). */
      drain (): Promise<void>
      /** Budgets and credentials shared with every replica. */
      services: UpstreamServices
      /** The base URL of the simulators' listener (127.0.0.1 only), or null when no upstream is in sandbox mode. */
      sandboxUrl: string | null
    }
  }
}

/** Where this server reaches itself (a simulator's webhooks): its listen address, loopback for a wildcard one. */
function selfUrl (app: FastifyInstance): string {
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('sandbox upstreams need the server to listen on a TCP port')
  const wildcard = address.address === '0.0.0.0' || address.address === '::'
  const host = wildcard ? (address.family === 'IPv6' ? '::1' : '127.0.0.1') : address.address
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`
}

export const upstreamsPlugin = fp(async (app: FastifyInstance, opts: { config: Config, client?: UpstreamClient, services?: UpstreamServices }) => {
  // Attempts, retries and 429s happen inside the client and nowhere else: its events are their metrics' only source.
  const client = opts.client ?? new UpstreamClient({
    onEvent: e => app.metrics.upstreamEvent(e),
    urlGuard: { allowedOrigins: opts.config.UPSTREAM_ALLOWED_ORIGINS, httpsOnly: opts.config.NODE_ENV === 'production' },
    limits: responseLimitOptions(opts.config),
  })
  const services: UpstreamServices = opts.services ?? {
    budgets: new PgBudgetStore(app.db.pool, { observe: app.metrics.budgetEvent }),
    credentials: new PgCredentialStore(app.db.pool, tokenKeySource(opts.config, app.log)),
  }
  const list: ResolvedUpstream[] = []
  const settings = new Map<string, () => unknown>()
  // Only the upstreams this gateway exposes (UPSTREAMS): the others have no routes, no simulator, no jobs.
  for (const definition of opts.config.registry.upstreams.filter(u => opts.config.UPSTREAMS.includes(u.name))) {
    const live = definition.settingsFromEnv(opts.config.upstreamEnv[definition.name] ?? {})
    if (live !== null) {
      list.push({ definition, mode: 'live' })
      settings.set(definition.name, () => live)
    } else if (opts.config.SANDBOX) {
      list.push({ definition, mode: 'sandbox' })
      app.log.info(`${definition.name}: SANDBOX mode, jobs are served by the built-in simulator (on a loopback-only listener). ` +
        `To connect the real ${definition.name}, set ${variablesOf(definition).join(', ')} (see README, Configuration).`)
    } else {
      list.push({ definition, mode: 'unconfigured' })
      app.log.warn(`${definition.name}: not configured and sandbox is off; its jobs will fail with upstream_not_configured`)
    }
  }
  const sandboxed = list.filter(u => u.mode === 'sandbox').map(u => u.definition)
  const sandbox = sandboxed.length === 0 ? null : await startSandbox(sandboxed, () => selfUrl(app))
  if (sandbox !== null) {
    app.addHook('onClose', () => sandbox.close())
    for (const { name } of sandboxed) settings.set(name, () => sandbox.settings.get(name))
  }
  const adapters = new Map<string, UpstreamAdapter>()
  const resolved = new Map<string, unknown>()
  const settingsFor = (name: string): unknown => {
    if (!resolved.has(name)) {
      const resolve = settings.get(name)
      if (resolve === undefined) return undefined
      resolved.set(name, resolve())
    }
    return resolved.get(name)
  }
  app.decorate('upstreams', {
    list,
    client,
    services,
    sandboxUrl: sandbox?.url ?? null,
    settingsFor,
    async drain () {
      await Promise.all([...adapters.values()].map(a => a.drain?.()))
    },
    adapterFor (name: string) {
      let adapter = adapters.get(name)
      const resolved = list.find(u => u.definition.name === name)
      const settings = settingsFor(name)
      if (adapter === undefined && settings !== undefined && resolved !== undefined) {
        // A simulator's tokens live in its process and start afresh with it: stored ones would outlive them.
        const own = resolved.mode === 'sandbox' ? { ...services, credentials: new MemoryCredentialStore() } : services
        // One adapter per upstream for the process: it keeps state jobs share (refreshed tokens, rate budgets).
        adapter = resolved.definition.createAdapter(settings, client, own)
        adapters.set(name, adapter)
      }
      return adapter
    },
  })
  app.addHook('onClose', async () => { await client.close() })
}, { name: 'upstreams', dependencies: ['db', 'metrics'] })
