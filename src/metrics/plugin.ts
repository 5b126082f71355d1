/**
 * Metrics for the rest of the app: `app.metrics`, one registry per app. Registered right after the database
 * (the jobs gauge counts there) and before the upstreams and the engine, which report to it. The route that
 * serves it is in api/metrics.ts, with the other routes.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { countJobs } from '../db/sql/job-counts.js'
import { createMetrics, type Metrics } from './metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

export const metricsPlugin = fp(async (app: FastifyInstance) => {
  const metrics = createMetrics({
    countJobs: () => countJobs(app.db.pool),
    onCollectError: err => app.log.warn({ err: (err as Error).message }, 'metrics: counting jobs failed; this scrape has no bulk_gateway_jobs'),
  })
  app.decorate('metrics', metrics)
  app.addHook('onClose', async () => { metrics.close() })
}, { name: 'metrics', dependencies: ['db'] })
