/**
 * What a webhook route checks before it reads a byte of the body, and the count of refused deliveries per source
 * address. Webhook routes are the gateway's only routes meant for the internet: a stranger must not be able to
 * make it read, buffer or hash a body.
 *
 * Before the body, in this order:
 * - WEBHOOK_FAILURE_LIMIT refused deliveries from this address within WEBHOOK_FAILURE_WINDOW_SECONDS: 429
 *   rate_limited. The address is `request.ip`: the client's own when TRUST_PROXY names the proxy in front.
 * - no signature header of the form the upstream declares: 401 webhook_signature_invalid;
 * - an announced Content-Length over the upstream's limit: 413 body_too_large.
 * Each refusal answers `Connection: close`, so the body that was not read goes with the connection.
 *
 * Counted as failures: refusals of deliveries whose signature did not verify (the three above, a wrong signature,
 * a body over the limit sent without Content-Length). Not counted: the 429s themselves, and deliveries whose
 * signature verified but whose content is refused (400): only the key holder can send those, and counting them
 * would let the upstream's own odd message lock its address out. Deliveries that are accepted are never
 * counted, so a genuine delivery is not refused for being one too many (Metriport does not retry).
 */
import type { Socket } from 'node:net'
import rateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { WebhookHandler } from '../contract/webhook.js'
import { ProblemError } from './problem.js'

/** WEBHOOK_FAILURE_LIMIT (0 = off) and WEBHOOK_FAILURE_WINDOW_SECONDS. */
export interface WebhookFailureLimit { limit: number, windowSeconds: number }

type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

export interface WebhookGuard {
  /** The onRequest hook of one upstream's webhook route: runs before the body is read. */
  beforeBody (webhook: Pick<WebhookHandler, 'signatureHeader' | 'maxBodyBytes'>): Hook
  /** The route's onError hook: counts a refusal against the address, unless the signature verified. */
  onError (request: FastifyRequest, reply: FastifyReply, error: FastifyError): Promise<void>
  /** Marks a delivery whose signature verified. */
  verified (request: FastifyRequest): void
}

/** How long a refused delivery's connection stays half-closed before it is destroyed. */
const LINGER_MS = 1000

/**
 * Closes a refused delivery's connection in stages (RFC 9112, 9.6): the answer and a FIN, reading stopped, and
 * the socket destroyed a moment later. Node would destroy it as soon as the answer is written; with the unread
 * body still arriving the kernel then resets the connection, and a client can lose the answer before reading it.
 */
function closeLingering (socket: Socket): void {
  socket.destroySoon = function (this: Socket) {
    this.end()
    // After Node's own resume of the unread request (it dumps it on the same turn), so that this one holds.
    setImmediate(() => this.pause())
    // Not unref'd: a paused socket keeps no event loop alive, and the server's close waits for this one.
    setTimeout(() => this.destroy(), LINGER_MS)
  }
}

function refuse (request: FastifyRequest, reply: FastifyReply, problem: ProblemError): never {
  reply.header('connection', 'close')
  closeLingering(request.raw.socket)
  throw problem
}

export async function webhookGuard (app: FastifyInstance, failures: WebhookFailureLimit): Promise<WebhookGuard> {
  // The request limits of rate-limit.ts may be off (and the plugin not registered); the plugin's own check
  // decides whether it registers its decorators again.
  if (!app.hasDecorator('createRateLimit')) await app.register(rateLimit, { global: false })
  const limiter = failures.limit === 0
    ? null
    : app.createRateLimit({
      max: failures.limit,
      timeWindow: failures.windowSeconds * 1000,
      // Per address (an IPv6 /64 counts as one), whatever client key a request carries; nothing is exempt.
      keyGenerator: request => normalizeIP(request.ip),
      allowList: () => false,
    })
  const verified = new WeakSet<FastifyRequest>()

  return {
    beforeBody ({ signatureHeader, maxBodyBytes }) {
      return async (request, reply) => {
        if (limiter !== null) {
          // A look, not a count: only refusals count (in onError).
          const status = await limiter(request, { increment: false })
          if (!status.isAllowed && status.remaining === 0) {
            request.log.warn({ limitedBy: 'webhook failures' }, 'webhook failure limit exceeded')
            refuse(request, reply, new ProblemError('rate_limited',
              `Too many refused webhook deliveries from this address (${failures.limit} per ${failures.windowSeconds} s). Retry after ${status.ttlInSeconds} s.`,
              { headers: { 'retry-after': String(status.ttlInSeconds) } }))
          }
        }
        const signature = request.headers[signatureHeader.name]
        if (typeof signature !== 'string' || !signatureHeader.format.test(signature)) {
          refuse(request, reply, new ProblemError('webhook_signature_invalid', `The ${signatureHeader.name} header is missing or malformed.`))
        }
        const announced = Number(request.headers['content-length'] ?? 0)
        if (announced > maxBodyBytes) {
          refuse(request, reply, new ProblemError('body_too_large', `A webhook delivery is at most ${maxBodyBytes} bytes; this one announces ${announced}.`))
        }
      }
    },
    async onError (request, _reply, error) {
      const status = error instanceof ProblemError ? error.status : (error.statusCode ?? 500)
      const refusedUnverified = status >= 400 && status < 500 && !verified.has(request) &&
        !(error instanceof ProblemError && error.code === 'rate_limited')
      if (limiter !== null && refusedUnverified) await limiter(request)
    },
    verified (request) {
      verified.add(request)
    },
  }
}
