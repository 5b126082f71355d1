/**
 * Builds the gateway as one Fastify app. Plugins are registered in a visible order:
 * problem handlers → database → metrics → upstreams → job engine → documentation → routes. Metrics come before
 * the upstreams and the engine, which report to them.
 */
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify'
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler } from 'fastify-type-provider-zod'
import type { Logger } from 'pino'
import { createLogger } from './logger.js'
import { requireClientKey } from './api/auth.js'
import { closeConnectionsOnShutdown } from './api/connections.js'
import { healthRoutes } from './api/health.js'
import { jobRoutes } from './api/jobs.js'
import { metricsRoutes } from './api/metrics.js'
import { answerClientError, answerFrameworkError, registerProblemHandlers } from './api/problem.js'
import { registerRateLimits } from './api/rate-limit.js'
import { resultRoutes } from './api/results.js'
import { upstreamRoutes } from './api/upstreams.js'
import { validatorCompiler } from './api/validation.js'
import { webhookRoutes } from './api/webhooks.js'
import type { Config } from './config.js'
import { dbPlugin } from './db/plugin.js'
import { enginePlugin } from './engine/plugin.js'
import { metricsPlugin } from './metrics/plugin.js'
import { openapiInfo } from './api/openapi-info.js'
import { completeResponses } from './api/openapi-responses.js'
import { publicBaseUrlOf, trailingSlashRedirect } from './api/public-url.js'
import { upstreamsPlugin } from './upstreams/plugin.js'
import { CallbackClient } from './upstreams/callback-client.js'
import { jobView } from './api/job-view.js'

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
    trustProxy: config.TRUST_PROXY,
    // Registering every upstream's schemas and the docs takes a moment; on a loaded machine it can pass
    // Fastify's 10 s default and fail the start for no reason.
    pluginTimeout: 60_000,
    // The whole request (headers and body) must arrive within this; a stalled upload gets 408. Responses,
    // NDJSON downloads included, are not limited by it.
    requestTimeout: config.REQUEST_TIMEOUT_SECONDS * 1000,
    // Node enforces it only with headersTimeout no longer than it (its default is 60 s), and checks every
    // connectionsCheckingInterval (default 30 s, which would let a 5 s limit run to 35 s).
    http: {
      requestTimeout: config.REQUEST_TIMEOUT_SECONDS * 1000,
      headersTimeout: Math.min(60_000, config.REQUEST_TIMEOUT_SECONDS * 1000),
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, config.REQUEST_TIMEOUT_SECONDS * 250)),
    },
    clientErrorHandler: answerClientError,
    // Without it, Fastify's router answers a path it cannot decode with its own JSON, not a problem.
    frameworkErrors: answerFrameworkError,
  })
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  registerProblemHandlers(app)
  closeConnectionsOnShutdown(app, config.SHUTDOWN_TIMEOUT_SECONDS * 1000)
  await registerRateLimits(app, config)
  app.decorate('publicBaseUrl', (request: FastifyRequest) => publicBaseUrlOf(request, config.PUBLIC_BASE_URL))

  await app.register(dbPlugin, { databaseUrl: opts.databaseUrl })
  await app.register(metricsPlugin)
  await app.register(upstreamsPlugin, { config })
  // Completion callbacks go out through the upstream client's URL guard, under the same rules (callback-client.ts).
  const callbackClient = new CallbackClient({
    timeoutMs: config.CALLBACK_TIMEOUT_SECONDS * 1000,
    urlGuard: { allowedOrigins: config.UPSTREAM_ALLOWED_ORIGINS, httpsOnly: config.NODE_ENV === 'production' },
  })
  await app.register(enginePlugin, {
    config,
    databaseUrl: opts.databaseUrl,
    startWorkers: opts.startWorkers ?? true,
    callbacks: { sender: callbackClient, view: jobView },
  })

  const exposed = config.registry.upstreams.filter(u => config.UPSTREAMS.includes(u.name))
  await app.register(swagger, {
    openapi: openapiInfo(exposed),
    transform: jsonSchemaTransform,
    transformObject: input => completeResponses(jsonSchemaTransformObject(input), exposed),
  })
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // Its page links its assets relatively only when its URL ends in a slash; behind a proxy's path prefix
    // (/bulk/docs) the absolute /docs/static/... would miss. A relative redirect keeps whatever prefix the browser used.
    uiHooks: { onRequest: trailingSlashRedirect('/docs') },
    // "Try it out" calls the document's server: this gateway as the client reaches it, prefix included.
    transformSpecification: (spec, request) => ({ ...spec, servers: [{ url: app.publicBaseUrl(request) }] }),
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  await app.register(healthRoutes)
  await app.register(metricsRoutes)
  await app.register(webhookRoutes, {
    failures: { limit: config.WEBHOOK_FAILURE_LIMIT, windowSeconds: config.WEBHOOK_FAILURE_WINDOW_SECONDS },
  })
  await app.register(async api => {
    requireClientKey(api, config.GATEWAY_API_KEYS)
    await api.register(jobRoutes, {
      registry: config.registry,
      callbacks: { allowedOrigins: config.CALLBACK_ALLOWED_ORIGINS, hasSecret: client => config.CALLBACK_SECRETS.has(client), guard: callbackClient },
    })
    await api.register(resultRoutes, {
      registry: config.registry,
      pageMaxBytes: config.RESULT_PAGE_MAX_BYTES,
      batchMaxBytes: config.RESULT_BATCH_MAX_BYTES,
      stallSeconds: config.RESULT_STREAM_STALL_SECONDS,
      maxStreamsPerClient: config.MAX_RESULT_STREAMS_PER_CLIENT,
    })
    await api.register(upstreamRoutes)
  })
  return app
}
