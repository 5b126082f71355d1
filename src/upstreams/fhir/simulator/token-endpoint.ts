/**
 * The simulator's SMART Backend Services token endpoint, as strict as the SMART reference server: a form with
 * grant_type=client_credentials, a system scope, the jwt-bearer assertion type, and an assertion whose header names
 * alg (RS384/ES384), kid and typ, signed by the client's registered key, with iss = sub = client id, aud = this
 * endpoint's URL exactly, an exp at most five minutes ahead and an unused jti.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose'
import { remember } from '../../simulator-kit/bounds.js'
import type { FhirSimulatorState } from './state.js'

const refuse = (state: FhirSimulatorState, reply: FastifyReply, status: number, error: string, description: string): FastifyReply => {
  state.stats.tokensRefused++
  return reply.code(status).send({ error, error_description: description })
}

/** This endpoint's absolute URL, as the assertion's `aud` must name it. */
export const tokenUrlOf = (request: FastifyRequest, prefix: string): string => `${request.protocol}://${request.host}${prefix}/auth/token`

/** Adds `POST /auth/token` (form-encoded) to the simulator. */
export function tokenEndpoint (app: FastifyInstance, state: FhirSimulatorState, prefix: string): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })
  app.post('/auth/token', async (request, reply) => {
    state.stats.tokenRequests++
    const form = (request.body ?? {}) as Record<string, string>
    const refusal = state.takeTokenRefusal()
    if (refusal !== null) {
      return refusal >= 500
        ? refuse(state, reply, refusal, 'server_error', 'The server failed')
        : refuse(state, reply, refusal, refusal === 401 ? 'invalid_client' : 'invalid_request', refusal === 401 ? 'Invalid client details' : 'Refused')
    }
    if (form.grant_type !== 'client_credentials') return refuse(state, reply, 400, 'unsupported_grant_type', 'The grant_type parameter should equal "client_credentials"')
    if (form.client_assertion_type !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
      return refuse(state, reply, 400, 'invalid_request', 'Invalid client_assertion_type parameter')
    }
    if (typeof form.scope !== 'string' || !/^(system\/[\w*]+\.(read|rs|cruds)\s*)+$/.test(form.scope)) {
      return refuse(state, reply, 400, 'invalid_scope', 'Only system scopes are supported')
    }
    const assertion = form.client_assertion ?? ''
    let header: ReturnType<typeof decodeProtectedHeader>
    try {
      header = decodeProtectedHeader(assertion)
    } catch {
      return refuse(state, reply, 400, 'invalid_request', 'Invalid client_assertion')
    }
    if ((header.alg !== 'RS384' && header.alg !== 'ES384') || typeof header.kid !== 'string' || header.typ !== 'JWT') {
      return refuse(state, reply, 400, 'invalid_request', 'The assertion header must name alg (RS384 or ES384), kid and typ JWT')
    }
    const claims = JSON.parse(Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString('utf8') || '{}') as { iss?: unknown }
    const clientId = typeof claims.iss === 'string' ? claims.iss : ''
    const jwk = state.options.clients?.[clientId]
    if (jwk === undefined || (jwk.kid !== undefined && jwk.kid !== header.kid)) return refuse(state, reply, 401, 'invalid_client', 'Unknown client or key')
    try {
      const { payload } = await jwtVerify(assertion, await importJWK(jwk as never, header.alg), {
        issuer: clientId, subject: clientId, audience: tokenUrlOf(request, prefix), algorithms: [header.alg], requiredClaims: ['exp', 'jti'],
      })
      if ((payload.exp as number) * 1000 > Date.now() + 5 * 60_000 + 5000) return refuse(state, reply, 400, 'invalid_request', 'The assertion lives longer than five minutes')
      const jti = payload.jti as string
      if (state.jtis.has(jti)) return refuse(state, reply, 400, 'invalid_request', 'The jti was used before')
      remember(state.jtis, jti, Date.now(), state.maxEntries)
    } catch {
      return refuse(state, reply, 401, 'invalid_client', 'The assertion could not be verified')
    }
    const { token, seconds } = state.issueToken()
    return reply.code(200).send({ token_type: 'bearer', scope: form.scope, expires_in: seconds, access_token: token })
  })
}
