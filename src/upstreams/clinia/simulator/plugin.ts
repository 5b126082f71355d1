/**
 * A strict Clinia bulk-API simulator, served over real HTTP: the gateway serves it on its sandbox listener, tests
 * start it alone with {@link startCliniaSimulator}. Never kinder than Clinia: the API key header is checked,
 * every operation is validated at submit against the source's profiles (one bad operation, or too many, makes
 * the whole request REJECTED with a receipt per operation, under the HTTP status its `rejectedStatus` setting
 * names, as Clinia's is unconfirmed), tasks stay PENDING for a while, receipts come only with
 * `withReceipts=true`, and its JSON escapes `<`, `>` and `&` as Clinia's Go encoder does, so a client that
 * re-serialises receipts is caught.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { startAlone, stateOf, type RunningSimulator, type SimulatorPluginOptions } from '../../simulator-kit/server.js'
import { CLINIA_RESOURCES, type CliniaOperation } from '../params.js'
import { checkOperation } from './profiles.js'
import { CliniaSimulatorState, type CliniaSimulatorOptions, type SimReceipt } from './state.js'

export type CliniaSimulatorPluginOptions = SimulatorPluginOptions<CliniaSimulatorOptions, CliniaSimulatorState>

/** Clinia accepts requests up to 5 GB; the simulator stops well before, at a size no test needs to reach. */
const BODY_LIMIT = 256 * 1024 * 1024

/** JSON as Go's encoding/json writes it: map keys sorted, and <, > and & escaped (they only occur in strings). */
export function goJson (v: unknown): string {
  const enc = (x: unknown): string => {
    if (Array.isArray(x)) return `[${x.map(enc).join(',')}]`
    if (typeof x === 'object' && x !== null) {
      return `{${Object.keys(x).sort().filter(k => (x as Record<string, unknown>)[k] !== undefined)
        .map(k => `${JSON.stringify(k)}:${enc((x as Record<string, unknown>)[k])}`).join(',')}}`
    }
    return JSON.stringify(x)
  }
  return enc(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')
}

const apiError = (code: number, type: string, message: string) => ({ code, message, type })

function send (reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).type('application/json').send(goJson(body))
}

/** The simulator as a Fastify plugin; encapsulated, so its error handler stays inside its prefix. */
export const cliniaSimulator: FastifyPluginAsync<CliniaSimulatorPluginOptions> = async (app, opts) => {
  const state = stateOf(opts, options => new CliniaSimulatorState(options))

  app.setErrorHandler((err: { statusCode?: number, message: string }, _request, reply) => {
    const status = err.statusCode ?? 500
    // Fastify's own client errors (unparsable JSON, wrong content type, body too large) in Clinia's shape.
    return send(reply, status, status >= 500 ? apiError(500, 'INTERNAL', 'internal error') : apiError(status, 'INVALID_ARGUMENT', err.message))
  })

  /** Key, injected faults, then the source; false when the reply has been sent. */
  const admit = (request: FastifyRequest, reply: FastifyReply, kind: 'submit' | 'poll'): boolean => {
    if (request.headers['x-clinia-api-key'] !== state.apiKey) {
      state.stats.unauthorized++
      void send(reply, 401, apiError(401, 'UNAUTHENTICATED', 'missing or invalid API key'))
      return false
    }
    const fault = state.fault(kind)
    if (fault !== undefined) {
      if (fault.status === 429 && fault.seconds !== null) void reply.header('retry-after', String(fault.seconds))
      void send(reply, fault.status, fault.status === 429 ? apiError(429, 'RESOURCE_EXHAUSTED', 'too many requests') : apiError(fault.status, 'UNAVAILABLE', 'service unavailable'))
      return false
    }
    if ((request.params as { sourceKey: string }).sourceKey !== state.sourceKey) {
      void send(reply, 404, apiError(404, 'NOT_FOUND', 'source not found'))
      return false
    }
    return true
  }

  for (const resource of CLINIA_RESOURCES) {
    app.post(`/sources/:sourceKey/v1/${resource}/bulk`, { bodyLimit: BODY_LIMIT }, async (request, reply) => {
      if (!admit(request, reply, 'submit')) return reply
      const body = request.body as { operations?: unknown } | undefined
      if (typeof body !== 'object' || body === null || !Array.isArray(body.operations) || body.operations.length === 0) {
        return send(reply, 400, apiError(400, 'INVALID_ARGUMENT', 'operations: expected a non-empty array'))
      }
      const raw: unknown[] = body.operations
      state.countSubmit(raw)
      const checks = raw.map(op => checkOperation(resource, op))
      const tooMany = raw.length > state.maxOperations
      if (tooMany || checks.some(c => 'error' in c)) {
        state.stats.rejected++
        const receipts = checks.map(c => 'error' in c && !tooMany
          ? { error: apiError(400, 'INVALID_ARGUMENT', c.error), status: 'FAILURE' }
          : { status: 'CANCELLED' })
        return send(reply, state.rejectedStatus, { receipts, status: 'REJECTED' })
      }
      const task = state.accept(resource, checks.map(c => (c as { op: CliniaOperation }).op))
      // bulkId is the deprecated bare form of the id; only taskId's bk_ form can be read back.
      return send(reply, 202, { bulkId: task.id.slice(3), status: 'ACCEPTED', taskId: task.id })
    })

    app.get(`/sources/:sourceKey/v1/${resource}/bulk/:taskId`, async (request, reply) => {
      if (!admit(request, reply, 'poll')) return reply
      const { withReceipts } = request.query as { withReceipts?: string }
      if (withReceipts !== undefined && withReceipts !== 'true' && withReceipts !== 'false') {
        return send(reply, 400, apiError(400, 'INVALID_ARGUMENT', 'withReceipts: expected true or false'))
      }
      const task = state.tasks.get((request.params as { taskId: string }).taskId)
      if (task === undefined || task.resource !== resource) return send(reply, 404, apiError(404, 'NOT_FOUND', 'task not found'))
      state.read(task)
      const receipts: SimReceipt[] = task.receipts ?? state.pendingReceipts(task)
      const status = task.receipts === null
        ? 'PENDING'
        : receipts.every(r => r.status === 'SUCCESS')
          ? 'SUCCESS'
          : receipts.every(r => r.status === 'CANCELLED') ? 'CANCELLED' : 'FAILURE'
      return send(reply, 200, withReceipts === 'true' ? { receipts, status } : { status })
    })
  }
}

/** A Clinia simulator running alone on 127.0.0.1, for tests and benchmarks. */
export type RunningCliniaSimulator = RunningSimulator<CliniaSimulatorState>

/** Starts a simulator on a free loopback port (or `port`); close() it at the end of the test. */
export async function startCliniaSimulator (options: CliniaSimulatorOptions & { port?: number } = {}): Promise<RunningCliniaSimulator> {
  return startAlone(cliniaSimulator, o => new CliniaSimulatorState(o), options)
}
