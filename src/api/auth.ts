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

/** Adds the auth hook to every route of the instance it is called in (an encapsulated scope). */
export function requireClientKey (app: FastifyInstance, keys: Map<string, string> | null): void {
  // Compare digests in constant time, so response timing says nothing about how much of a key matched.
  const known = keys === null ? null : [...keys].map(([key, name]) => ({ digest: digest(key), name }))
  app.decorateRequest('clientId', '')
  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (known === null) {
      request.clientId = 'anonymous'
      return
    }
    const header = request.headers.authorization
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header)
    const unauthorized = new ProblemError(401, 'Unauthorized', 'Send a client key as `Authorization: Bearer <key>`.', undefined, { 'WWW-Authenticate': 'Bearer realm="bulk-gateway"' })
    if (match?.[1] === undefined) throw unauthorized
    const presented = digest(match[1])
    const client = known.find(k => timingSafeEqual(k.digest, presented))
    if (client === undefined) throw unauthorized
    request.clientId = client.name
    request.log = request.log.child({ client: client.name })
  })
}
