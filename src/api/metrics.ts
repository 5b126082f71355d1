/** `GET /metrics` for Prometheus: no client key (deployers restrict it at their proxy, as docs/API.md says). */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'

export const metricsRoutes: FastifyPluginAsyncZod = async app => {
  app.get('/metrics', {
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics',
      description: 'Jobs by upstream and status, job durations, upstream requests, latency, retries and 429s, records stored, ' +
        'results expired, webhook deliveries, worker leases, and the process\'s own metrics, in the Prometheus text format. ' +
        'Values are this replica\'s, except `bulk_gateway_jobs`, which is counted in the shared database.',
      security: [],
      response: {
        200: {
          description: 'Prometheus text exposition format 0.0.4',
          content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: z.string() } },
        },
      },
    },
  }, async (_request, reply) => {
    const text = await app.metrics.registry.metrics()
    // A string with a non-JSON content type is sent as it is, not through the JSON serializer.
    return reply.type(app.metrics.registry.contentType).send(text)
  })
}
