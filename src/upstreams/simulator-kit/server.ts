/**
 * Runs a simulator plugin alone on 127.0.0.1 (tests and benchmarks), the way the gateway mounts it under
 * /sandbox/<name> in sandbox mode, and what every simulator plugin does the same way: take a state shared with a
 * test or make its own, read an empty JSON body as none.
 */
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import { injectWireFaults, type WireFaults } from './wire-faults.js'

/** A simulator listening on loopback; `close()` it when done. */
export interface RunningSimulator<State> {
  /** Base URL to give the adapter, e.g. http://127.0.0.1:41234 */
  url: string
  state: State
  app: FastifyInstance
  close (): Promise<void>
}

/** A simulator plugin's options: the simulator's own, or a state object to share with a test (which then holds them). */
export type SimulatorPluginOptions<Options, State> = Options & { state?: State }

/** The state a simulator plugin serves: the one a test shares, or one made from the plugin's options. */
export function stateOf<Options, State> (opts: SimulatorPluginOptions<Options, State>, make: (options: Options) => State): State {
  const { state, ...options } = opts
  return state ?? make(options as Options)
}

/**
 * Starts a simulator alone on a free loopback port (or `port`), its state made from the other options: what every
 * upstream's `start…Simulator` does before adding its own. close() it at the end of the test.
 */
export async function startAlone<Options, State> (
  plugin: FastifyPluginAsync<SimulatorPluginOptions<Options, State>>,
  make: (options: Options) => State,
  options: Options & { port?: number }
): Promise<RunningSimulator<State>> {
  const { port, ...stateOptions } = options
  return serveSimulator(plugin, make(stateOptions as Options), { port })
}

export async function serveSimulator<State, Options extends { state?: State }> (
  plugin: FastifyPluginAsync<Options>,
  state: State,
  opts: { port?: number, pluginOptions?: Omit<Options, 'state'>, wireFaults?: WireFaults } = {}
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
