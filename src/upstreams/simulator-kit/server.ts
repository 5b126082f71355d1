/**
 * Runs a simulator plugin alone on 127.0.0.1 (tests and benchmarks), the way the gateway mounts it under
 * /sandbox/<name> in sandbox mode. Every upstream's `start…Simulator` is this with its own state.
 */
import { once } from 'node:events'
import { PassThrough } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyRequest } from 'fastify'
import { reshape, type DrawnWireFault, type WireFaults } from './injected-faults.js'

/** A simulator listening on loopback; `close()` it when done. */
export interface RunningSimulator<State> {
  /** Base URL to give the adapter, e.g. http://127.0.0.1:41234 */
  url: string
  state: State
  app: FastifyInstance
  close (): Promise<void>
}

export async function serveSimulator<State, Options extends { state?: State }> (
  plugin: FastifyPluginAsync<Options>,
  state: State,
  opts: { port?: number, pluginOptions?: Omit<Options, 'state'>, wireFaults?: WireFaults } = {},
): Promise<RunningSimulator<State>> {
  // Stalled or streaming responses must not hold close() up.
  const app = Fastify({ logger: false, forceCloseConnections: true })
  if (opts.wireFaults !== undefined) injectWireFaults(app, opts.wireFaults)
  await app.register(plugin, { ...opts.pluginOptions, state } as Options)
  await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : opts.port
  return { url: `http://127.0.0.1:${port}`, state, app, close: () => app.close() }
}

/**
 * Accepts `Content-Type: application/json` with an empty body as no body, as Django REST framework and
 * Express do (clients, DrChrono's own example among them, POST that way); malformed JSON is a 400 with
 * `message`, worded by the upstream being imitated.
 */
export function acceptEmptyJsonBodies (app: FastifyInstance, message: string): void {
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') { done(null, undefined); return }
    try {
      done(null, JSON.parse(body as string))
    } catch {
      done(Object.assign(new Error(message), { statusCode: 400 }), undefined)
    }
  })
}

const MAINTENANCE_PAGE = '<!DOCTYPE html>\n<html><head><title>Maintenance</title></head><body><h1>We will be back soon</h1></body></html>\n'

/**
 * Applies {@link WireFaults} to every request of `app` (register it before the simulator's routes). Faults that
 * come before the upstream answer the request themselves; the others let the simulator handle it (its state
 * moves, as the real upstream's would) and then spoil or withhold the answer.
 */
export function injectWireFaults (app: FastifyInstance, faults: WireFaults): void {
  const drawn = new WeakMap<FastifyRequest, DrawnWireFault>()
  app.addHook('onRequest', async (request, reply) => {
    const fault = faults.draw()
    if (fault === null) return
    if (fault.kind === 'unavailable') {
      faults.count(fault.kind)
      return reply.code(503).type('text/plain; charset=utf-8').send('Service Unavailable')
    }
    if (fault.kind === 'throttle') {
      faults.count(fault.kind)
      return reply.code(429).type('application/json').send('{"message":"Too Many Requests"}')
    }
    drawn.set(request, fault)
  })
  app.addHook('onSend', async (request, reply, payload) => {
    const fault = drawn.get(request)
    if (fault === undefined) return payload
    drawn.delete(request)
    if (fault.kind === 'hang' || fault.kind === 'reset') {
      faults.count(fault.kind)
      // Writing after the connection is gone is a no-op: the answer goes nowhere.
      if (fault.kind === 'reset') request.raw.socket.resetAndDestroy()
      else if (!reply.raw.destroyed) await once(reply.raw, 'close')
      return payload
    }
    const json = reply.statusCode >= 200 && reply.statusCode < 300 && /json/i.test(String(reply.getHeader('content-type') ?? '')) &&
      (typeof payload === 'string' || Buffer.isBuffer(payload))
    if (!json) {
      faults.unused(fault)
      return payload
    }
    faults.count(fault.kind)
    const body = Buffer.from(payload)
    const half = Math.max(1, Math.floor(body.length / 2))
    if (fault.kind === 'truncate') return body.subarray(0, half)
    if (fault.kind === 'garble') return MAINTENANCE_PAGE
    if (fault.kind === 'wrongShape') return JSON.stringify(reshape(JSON.parse(body.toString('utf8'))))
    // stall: the client is promised the whole body and gets half of it.
    void reply.header('content-length', String(body.length))
    const stalled = new PassThrough()
    stalled.write(body.subarray(0, half))
    reply.raw.once('close', () => stalled.destroy())
    return stalled
  })
}
