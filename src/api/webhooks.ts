/**
 * `POST /webhooks/{upstream}`: upstreams that finish jobs by calling back (Metriport). Authenticated by the
 * upstream's signature, not by client keys: the handler verifies the exact bytes received before anything is
 * parsed, then the delivery is recorded once per message id and applied to the job parked under its key.
 */
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { deliverWebhook, type DeliveryOutcome } from '../db/sql/webhooks.js'
import { secondsSince } from '../metrics/observe.js'
import { WebhookRejected } from '../upstreams/types.js'
import { ProblemError, problemSchema } from './problem.js'

export const webhookRoutes: FastifyPluginAsyncZod<{ ttlSeconds: number }> = async (app, opts) => {
  // The signature covers the raw bytes: keep them, parse nothing before verification.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 16 * 1024 * 1024 }, (_req, body, done) => done(null, body))

  app.post('/webhooks/:upstream', {
    schema: {
      tags: ['webhooks'],
      summary: 'Receive an upstream\'s webhook',
      description: 'Called by upstreams that finish jobs asynchronously (Metriport: register `<public URL>/webhooks/metriport`). ' +
        'Authenticated by the upstream\'s signature header; a bad signature is 401 and changes nothing. Deliveries are idempotent on the upstream\'s message id.',
      params: z.object({ upstream: z.string() }),
      security: [],
      response: { 200: z.record(z.string(), z.unknown()).describe('The upstream\'s expected acknowledgement (e.g. `{"pong": …}` for a ping)'), 400: problemSchema, 401: problemSchema, 404: problemSchema },
    },
  }, async (request, reply) => {
    const definition = app.upstreams.list.find(u => u.definition.name === request.params.upstream && u.mode !== 'unconfigured')?.definition
    const settings = definition === undefined ? undefined : app.upstreams.settingsFor(definition.name)
    if (definition?.webhook === undefined || settings === undefined) {
      throw new ProblemError('webhook_not_found', `No webhooks are received for ${request.params.upstream}.`)
    }
    const rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
    let result
    try {
      result = definition.webhook.receive({ rawBody, headers: request.headers, settings, receivedAt: new Date() })
    } catch (err) {
      if (!(err instanceof WebhookRejected)) throw err
      app.metrics.observe.webhookDelivery(definition.name, 'rejected')
      throw new ProblemError(err.status === 401 ? 'webhook_signature_invalid' : 'webhook_malformed', err.message)
    }
    // The upstream decides its acknowledgement's status; the route's schema documents the usual 200.
    if (result.kind === 'reply') {
      app.metrics.observe.webhookDelivery(definition.name, 'ping')
      return (reply as FastifyReply).code(result.status).send(result.body)
    }
    const delivery = await deliverWebhook(app.db.pool, {
      upstream: definition.name, messageId: result.messageId, key: result.key, outcome: result.outcome, ttlSeconds: opts.ttlSeconds,
    })
    request.log.info({ upstream: definition.name, ...(delivery.status === 'applied' ? { jobIds: delivery.jobIds } : {}), delivery: delivery.status }, 'webhook delivery')
    app.metrics.observe.webhookDelivery(definition.name, delivery.status)
    if (delivery.status === 'applied') {
      // The delivery is committed: a failure to report it must not make the upstream send it again.
      await reportFinishedJobs(app, definition.name, delivery.jobIds, result.outcome)
        .catch((err: Error) => request.log.warn({ err: err.message }, 'metrics: could not report the jobs a webhook finished'))
    }
    return (reply as FastifyReply).code(result.reply.status).send(result.reply.body)
  })
}

/** Jobs a delivery finished never pass through the worker again: report their end and records here. */
async function reportFinishedJobs (app: FastifyInstance, upstream: string, jobIds: string[], outcome: DeliveryOutcome): Promise<void> {
  const jobs = await app.db.prisma.job.findMany({ where: { id: { in: jobIds } }, select: { startedAt: true } })
  for (const job of jobs) {
    const durationSeconds = secondsSince(job.startedAt)
    if ('error' in outcome) app.metrics.observe.jobFinished({ upstream, outcome: 'failed', code: outcome.error.code, durationSeconds })
    else {
      app.metrics.observe.jobFinished({ upstream, outcome: 'completed', durationSeconds })
      app.metrics.observe.recordsStored(upstream, outcome.records.length)
    }
  }
}
