/**
 * Request rate limits (@fastify/rate-limit), counted in this process's memory, so per replica: with N
 * replicas behind a balancer a client gets up to N times the limit (README, Deployment).
 *
 * - A request with a valid client key counts against that client (RATE_LIMIT_MAX per window), whichever
 *   replica-local IP it comes from.
 * - Any other request (no key, a wrong key, /docs, /openapi.json, /metrics) counts against its IP
 *   (RATE_LIMIT_ANONYMOUS_MAX): the real client's, when TRUST_PROXY lets Fastify read X-Forwarded-For. Wrong keys
 *   are counted before they are refused, so guessing keys is throttled too.
 * - Exempt: /health/* (probes), and the webhook routes of configured upstreams (an upstream's delivery is
 *   authenticated by its signature, and a 429 could lose it; refused deliveries have their own limit, see
 *   webhook-guard.ts). Exemption goes by the route matched, so a /webhooks/* path with no route counts as usual.
 *
 * Over the limit: 429 problem+json with Retry-After and the RateLimit-Limit/-Remaining/-Reset headers.
 */
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import { clientResolver } from './auth.js'
import { ProblemError } from './problem.js'

const exempt = /^\/(health|webhooks)(\/|\?|$)/

/** Whether requests to this URL (or route path) are never rate-limited. */
export function exemptFromRateLimits (url: string): boolean {
  return exempt.test(url)
}

export async function registerRateLimits (app: FastifyInstance, config: Config): Promise<void> {
  const clientMax = config.RATE_LIMIT_MAX
  const anonymousMax = config.RATE_LIMIT_ANONYMOUS_MAX
  if (clientMax === 0 && anonymousMax === 0) return
  const clientOf = clientResolver(config.GATEWAY_API_KEYS)
  // Open access (no keys, development) makes every caller "anonymous": count those by IP instead.
  const keyOf = (request: FastifyRequest): string => {
    const client = config.GATEWAY_API_KEYS === null ? null : clientOf(request.headers.authorization)
    return client === null ? `ip:${request.ip}` : `client:${client}`
  }
  const maxOf = (key: string): number => key.startsWith('client:') ? clientMax : anonymousMax
  await app.register(rateLimit, {
    // Not per route (route hooks run after the auth hook of the /jobs scope): one root onRequest hook below,
    // which runs before authentication, unknown URLs included.
    global: false,
    timeWindow: config.RATE_LIMIT_WINDOW_SECONDS * 1000,
    keyGenerator: keyOf,
    max: (_request, key) => maxOf(key),
    // A limit of 0 switches that kind of limit off.
    allowList: (request, key) => exemptFromRateLimits(request.routeOptions.url ?? '') || maxOf(key) === 0,
    enableDraftSpec: true,
    onExceeded: (request, key) => {
      request.log.warn({ limitedBy: key.startsWith('client:') ? 'client' : 'ip' }, 'rate limit exceeded')
    },
    errorResponseBuilder: (_request, context) => new ProblemError('rate_limited',
      `Rate limit reached: ${context.max} requests per ${config.RATE_LIMIT_WINDOW_SECONDS} s. Retry after ${context.after}.`),
  })
  app.addHook('onRequest', app.rateLimit())
}
