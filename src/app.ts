/**
 * Builds the gateway as one Fastify app. Plugins are registered in a visible order:
 * problem handlers → database → metrics → upstreams → job engine → documentation → routes. Metrics come before
 * the upstreams and the engine, which report to them.
 */
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify'
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import type { Logger } from 'pino'
import { createLogger } from './logger.js'
import { requireClientKey } from './api/auth.js'
import { closeConnectionsOnShutdown } from './api/connections.js'
import { healthRoutes } from './api/health.js'
import { jobRoutes } from './api/jobs.js'
import { metricsRoutes } from './api/metrics.js'
import { registerProblemHandlers } from './api/problem.js'
import { resultRoutes } from './api/results.js'
import { upstreamRoutes } from './api/upstreams.js'
import { webhookRoutes } from './api/webhooks.js'
import type { Config } from './config.js'
import { dbPlugin } from './db/plugin.js'
import { enginePlugin } from './engine/plugin.js'
import { metricsPlugin } from './metrics/plugin.js'
import { openapiInfo } from './api/openapi-info.js'
import { upstreamsPlugin } from './upstreams/plugin.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Scheme, host and prefix clients use to reach this gateway (PUBLIC_BASE_URL, or the request's own). */
    publicBaseUrl (request: FastifyRequest): string
  }
}

export interface BuildOptions {
  databaseUrl: string
  /** A pino logger to use (tests pass one that captures); otherwise one is made from LOG_LEVEL. */
  logger?: Logger
  /** Start workers, listener and sweeper once the server listens (default true). */
  startWorkers?: boolean
}

export async function buildApp (config: Config, opts: BuildOptions): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: (opts.logger ?? createLogger(config)) as FastifyBaseLogger,
    // Fastify takes a hop count too, though its types do not say so.
    trustProxy: config.TRUST_PROXY as boolean | string,
    // Registering every upstream's schemas and the docs takes a moment; on a loaded machine it can pass
    // Fastify's 10 s default and fail the start for no reason.
    pluginTimeout: 60_000,
  })
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  registerProblemHandlers(app)
  closeConnectionsOnShutdown(app, config.SHUTDOWN_TIMEOUT_SECONDS * 1000)
  app.decorate('publicBaseUrl', (request: FastifyRequest) =>
    config.PUBLIC_BASE_URL?.replace(/\/$/, '') ?? `${request.protocol}://${request.host}`)

  await app.register(dbPlugin, { databaseUrl: opts.databaseUrl })
  await app.register(metricsPlugin)
  await app.register(upstreamsPlugin, { config })
  await app.register(enginePlugin, { config, databaseUrl: opts.databaseUrl, startWorkers: opts.startWorkers ?? true })

  await app.register(swagger, { openapi: openapiInfo, transform: jsonSchemaTransform, transformObject: jsonSchemaTransformObject })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  await app.register(healthRoutes)
  await app.register(metricsRoutes)
  await app.register(webhookRoutes, { ttlSeconds: config.RESULT_TTL_SECONDS })
  await app.register(async api => {
    requireClientKey(api, config.GATEWAY_API_KEYS)
    await api.register(jobRoutes)
    await api.register(resultRoutes)
    await api.register(upstreamRoutes)
  })
  return app
}
