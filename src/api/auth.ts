/**
 * Client authentication: `Authorization: Bearer <key>` against GATEWAY_API_KEYS. The key's name is the client
 * id that owns jobs. With no keys configured (development only) every caller is the client `anonymous`.
 */
import { hash, timingSafeEqual } from 'node:crypto'
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { ProblemError } from './problem.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated client (set by the auth hook on /jobs* and /upstreams). */
    clientId: string
  }
}

const digest = (s: string): Buffer => hash('sha256', s, 'buffer')

/**
 * Adds the client to the request's log lines. Fastify gives each request a child logger of its own, so its
 * bindings can be extended in place; a child of that child would cost ten times the rest of this hook, since
 * V8 turns every fresh object used as a prototype into a prototype map. Pino's loggers have setBindings.
 */
function bindClient (request: FastifyRequest, client: string): void {
  const log = request.log as FastifyBaseLogger & Partial<Pick<Logger, 'setBindings'>>
  if (log.setBindings !== undefined) log.setBindings({ client })
  else request.log = request.log.child({ client })
}

/**
 * The client named by an `Authorization` header: its name, or null when the header is missing, malformed or
 * carries no known key. With no keys configured (`keys` null) every caller is `anonymous`.
 */
export function clientResolver (keys: Map<string, string> | null): (authorization: string | undefined) => string | null {
  // Compare digests in constant time, so response timing says nothing about how much of a key matched.
  const known = keys === null ? null : [...keys].map(([key, name]) => ({ digest: digest(key), name }))
  return authorization => {
    if (known === null) return 'anonymous'
    const match = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization)
    if (match?.[1] === undefined) return null
    const presented = digest(match[1])
    return known.find(k => timingSafeEqual(k.digest, presented))?.name ?? null
  }
}

/** Adds the auth hook to every route of the instance it is called in (an encapsulated scope). */
export function requireClientKey (app: FastifyInstance, keys: Map<string, string> | null): void {
  const clientOf = clientResolver(keys)
  app.decorateRequest('clientId', '')
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const client = clientOf(request.headers.authorization)
    if (client === null) {
      throw new ProblemError('unauthorized', 'Send a client key as `Authorization: Bearer <key>`.', { headers: { 'WWW-Authenticate': 'Bearer realm="bulk-gateway"' } })
    }
    request.clientId = client
    if (keys !== null) bindClient(request, client)
  })
}
