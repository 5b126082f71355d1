/**
 * A strict Metriport simulator over real HTTP: the gateway serves it on its sandbox listener (its webhooks
 * then go to the gateway's own `/webhooks/metriport`), tests start it alone with {@link startMetriportSimulator}.
 * It answers as Metriport does: API Gateway's bare 403 without the right `x-api-key` (and its bare 429 when a
 * test throttles), problem-like errors `{status, name, title, detail}`, 404 for an unknown patient, the same
 * requestId while a run is processing, and the result only by a signed webhook, sent once; unknown extra fields
 * in what it sends are a setting (see bodies.ts).
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { acceptEmptyJsonBodies, startAlone, type RunningSimulator } from '../../simulator-kit/server.js'
import { BULK_URL_PATH } from '../adapter.js'
import { METADATA_LIMITS } from '../params.js'
import { startBody } from './bodies.js'
import type { SimulatorMountOptions } from '../../types.js'
import { MetriportSimulatorState, type MetriportSimulatorOptions } from './state.js'

/** Plugin options: simulator options, or a state to share with a test; `gatewayUrl` when the gateway serves it. */
export type MetriportSimulatorPluginOptions = MetriportSimulatorOptions & Partial<Pick<SimulatorMountOptions, 'gatewayUrl'>> & { state?: MetriportSimulatorState }

const NAMES: Record<number, [string, string]> = {
  400: ['BadRequestError', 'Bad Request'],
  404: ['NotFoundError', 'Not Found'],
  500: ['InternalServerError', 'Internal Server Error'],
}

function problem (reply: FastifyReply, status: number, detail: string): FastifyReply {
  const [name, title] = NAMES[status] ?? ['Error', 'Error']
  return reply.code(status).type('application/problem+json; charset=utf-8').send({ status, name, title, detail })
}

/** Metriport's own check of `{ metadata }`; the message when it fails, or null. */
function metadataProblem (body: unknown): string | null {
  if (body === undefined) return null
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'The body must be a JSON object.'
  const metadata = (body as { metadata?: unknown }).metadata
  if (metadata === undefined) return null
  const limits = `You can specify up to ${METADATA_LIMITS.maxPairs} keys, with key names up to ${METADATA_LIMITS.maxKeyLength} characters long and values up to ${METADATA_LIMITS.maxValueLength} characters long.`
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) return limits
  const entries = Object.entries(metadata)
  const fits = entries.length <= METADATA_LIMITS.maxPairs && entries.every(([k, v]) =>
    k.length >= 1 && k.length <= METADATA_LIMITS.maxKeyLength && typeof v === 'string' && v.length <= METADATA_LIMITS.maxValueLength)
  return fits ? null : limits
}

/** The simulator as a Fastify plugin; encapsulated, so its parsers and error handler stay inside its prefix. */
export const metriportSimulator: FastifyPluginAsync<MetriportSimulatorPluginOptions> = async (app, opts) => {
  const { state: given, gatewayUrl, ...options } = opts
  const state = given ?? new MetriportSimulatorState({
    ...options,
    webhookUrl: options.webhookUrl ?? (gatewayUrl === undefined ? undefined : () => `${gatewayUrl()}/webhooks/metriport`),
  })
  // A state the plugin made is the plugin's to stop; a given one belongs to whoever made it.
  if (given === undefined) app.addHook('onClose', async () => { await state.close() })

  acceptEmptyJsonBodies(app, 'Unexpected token in JSON')
  app.setErrorHandler((err: { statusCode?: number, message: string }, _request, reply) => {
    const status = err.statusCode !== undefined && err.statusCode < 500 ? 400 : 500
    return problem(reply, status, status === 400 ? err.message : 'Something went wrong.')
  })

  app.post(BULK_URL_PATH, async (request, reply) => {
    // Metriport sits behind AWS API Gateway: a missing or wrong key never reaches the API.
    if (request.headers['x-api-key'] !== state.apiKey) {
      state.stats.unauthorized++
      return reply.code(403).send({ message: 'Forbidden' })
    }
    const throttled = state.takeThrottle()
    if (throttled !== null) {
      if (throttled.retryAfterSeconds !== null) void reply.header('retry-after', String(throttled.retryAfterSeconds))
      return reply.code(429).send({ message: 'Too Many Requests' })
    }
    const patientId = (request.query as Record<string, unknown>).patientId
    if (typeof patientId !== 'string' || patientId === '') {
      state.stats.badRequests++
      return problem(reply, 400, 'Missing patientId query param')
    }
    const invalid = metadataProblem(request.body)
    if (invalid !== null) {
      state.stats.badRequests++
      return problem(reply, 400, invalid)
    }
    if (!state.isKnownPatient(patientId)) {
      state.stats.notFound++
      return problem(reply, 404, 'Could not find patient')
    }
    const metadata = (request.body as { metadata?: Record<string, string> } | undefined)?.metadata
    const started = state.start(patientId, metadata)
    if (state.options.answerAfterDelivery === true) await started.delivered
    return reply.type('application/json; charset=utf-8').send(startBody(started.status, started.requestId, state.extraFields))
  })
}

/** A Metriport simulator running alone on 127.0.0.1, for tests and benchmarks. */
export type RunningMetriportSimulator = RunningSimulator<MetriportSimulatorState>

/** Starts a simulator on a free loopback port (or `port`); close() it at the end of the test. */
export async function startMetriportSimulator (options: MetriportSimulatorOptions & { port?: number } = {}): Promise<RunningMetriportSimulator> {
  const running = await startAlone(metriportSimulator, o => new MetriportSimulatorState(o), options)
  // Its pending webhook deliveries must stop with it.
  return { ...running, close: async () => { await running.state.close(); await running.close() } }
}
