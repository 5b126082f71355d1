/**
 * Client authentication: `Authorization: Bearer <key>` against GATEWAY_API_KEYS. The key's name is the client
 * id that owns jobs. With no keys configured (development only) every caller is the client `anonymous`.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ProblemError } from './problem.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated client (set by the auth hook on /jobs* and /upstreams). */
    clientId: string
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

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
      throw new ProblemError(401, 'Unauthorized', 'Send a client key as `Authorization: Bearer <key>`.', undefined, { 'WWW-Authenticate': 'Bearer realm="bulk-gateway"' })
    }
    request.clientId = client
    if (keys !== null) request.log = request.log.child({ client })
  })
}
