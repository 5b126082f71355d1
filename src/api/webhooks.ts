/**
 * `POST /webhooks/<upstream>`, one static route per upstream that finishes jobs by calling back (Metriport) and
 * is configured (live or sandbox): an upstream that is not has no route at all (404 route_not_found).
 * Authenticated by the upstream's signature, not by client keys. Before the body is read, webhook-guard.ts
 * refuses what cannot be genuine; then the handler verifies the exact bytes received before anything is
 * parsed, and the delivery is recorded once per message id and applied to the job parked under its key.
 */
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { AnyUpstream } from '../upstreams/registry.js'
import { WebhookRejected } from '../domain/errors.js'
import type { WebhookHandler } from '../contract/webhook.js'
import { ProblemError, problemSchema } from './problem.js'
import { webhookGuard, type WebhookFailureLimit, type WebhookGuard } from './webhook-guard.js'

export const webhookRoutes: FastifyPluginAsyncZod<{ failures: WebhookFailureLimit }> = async (app, opts) => {
  // The signature covers the raw bytes: keep them, parse nothing before verification. Each route sets its limit.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  const guard = await webhookGuard(app, opts.failures)
  for (const { definition } of app.upstreams.list) {
    const webhook = definition.webhook
    if (webhook === undefined || app.upstreams.settingsFor(definition.name) === undefined) continue
    registerWebhookRoute(app, definition, webhook, guard)
  }
}

function registerWebhookRoute (app: FastifyInstance, definition: AnyUpstream, webhook: WebhookHandler, guard: WebhookGuard): void {
  const name = definition.name
  app.post(`/webhooks/${name}`, {
    bodyLimit: webhook.maxBodyBytes,
    onRequest: guard.beforeBody(webhook),
    onError: guard.onError,
    schema: {
      tags: ['webhooks'],
      summary: `Receive ${name}'s webhook`,
      description: `Called by ${name} to finish jobs (register \`<public URL>/webhooks/${name}\` with it). ` +
        `Authenticated by the \`${webhook.signatureHeader.name}\` signature header, not by a client key. A missing or malformed ` +
        `signature header is refused (401) before the body is read, and so is a body announced over ${webhook.maxBodyBytes} bytes (413); ` +
        'a wrong signature is 401 and changes nothing. An address whose deliveries were refused WEBHOOK_FAILURE_LIMIT times within ' +
        'WEBHOOK_FAILURE_WINDOW_SECONDS gets 429 until the window ends; accepted deliveries are never limited. ' +
        'Deliveries are idempotent on the upstream\'s message id.',
      security: [],
      response: {
        200: z.record(z.string(), z.unknown()).describe('The upstream\'s expected acknowledgement (e.g. `{"pong": …}` for a ping)'),
        400: problemSchema,
        401: problemSchema,
        413: problemSchema,
        429: problemSchema,
      },
    },
  }, async (request, reply) => {
    const settings = app.upstreams.settingsFor(name)
    const rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
    let result
    try {
      result = webhook.receive({ rawBody, headers: request.headers, settings, receivedAt: new Date() })
    } catch (err) {
      if (!(err instanceof WebhookRejected)) throw err
      app.metrics.observe.webhookDelivery(name, 'rejected')
      if (err.status !== 401) guard.verified(request)
      throw new ProblemError(err.code, err.message)
    }
    guard.verified(request)
    // The upstream decides its acknowledgement's status; the route's schema documents the usual 200.
    if (result.kind === 'reply') {
      app.metrics.observe.webhookDelivery(name, 'ping')
      return (reply as FastifyReply).code(result.status).send(result.body)
    }
    const delivery = await app.jobs.deliver({ upstream: name, messageId: result.messageId, key: result.key, outcome: result.outcome })
    request.log.info({ upstream: name, ...(delivery.status === 'applied' ? { jobIds: delivery.jobIds } : {}), delivery: delivery.status }, 'webhook delivery')
    app.metrics.observe.webhookDelivery(name, delivery.status)
    return (reply as FastifyReply).code(result.reply.status).send(result.reply.body)
  })
}
