/**
 * A strict Cliniko simulator over real HTTP: the gateway serves it on its sandbox listener, tests start it alone
 * with {@link startClinikoSimulator}. It is never kinder than docs/UPSTREAMS.md says Cliniko is:
 * - a User-Agent that is not `Name (email)` is refused with a plain-text 403 (Cliniko says such requests "may be
 *   blocked"; here they always are, so an adapter that forgets it fails in tests rather than in production);
 * - Basic auth with a known key of this simulator's shard, else a plain-text 401 (also for a key of another shard;
 *   a JSON body is a setting, as the body is unconfirmed);
 * - `Accept` must name application/json, else 406;
 * - 200 requests a minute per user (configurable), then 429 with X-RateLimit-Reset in UNIX seconds (which headers
 *   a 429 carries is a setting: Reset and Retry-After, each present or not);
 * - unknown parameters, filter fields, operators and sort fields, and per_page above 100, are a 422
 *   `{"message":"Validation Failed","errors":{...}}`;
 * - pagination links are absolute, built from the request's own host and path (so a mount prefix is kept).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { setTimeout as delay } from 'node:timers/promises'
import { passes, proxyErrorText } from '../../simulator-kit/admission.js'
import { startAlone, stateOf, type RunningSimulator, type SimulatorPluginOptions } from '../../simulator-kit/server.js'
import { CLINIKO_LISTS, CLINIKO_RESOURCES, type ClinikoResource } from '../params.js'
import { listCache, readPageQuery } from './lists.js'
import { ClinikoSimulatorState, type ClinikoSimulatorOptions } from './state.js'
import { USER_AGENT, shardOfKey } from '../env.js'

export type ClinikoSimulatorPluginOptions = SimulatorPluginOptions<ClinikoSimulatorOptions, ClinikoSimulatorState>

// What Rails answers for a refused HTTP Basic login; Cliniko's exact 401 body is unconfirmed (see UnauthorizedBody).
const ACCESS_DENIED = 'HTTP Basic: Access denied.\n'
const ACCESS_DENIED_JSON = '{"message":"Unauthorized"}'
const RAILS_500 = '<!DOCTYPE html>\n<html><head><title>We\'re sorry, but something went wrong (500)</title></head><body></body></html>\n'

function text (reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).type(status === 500 ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8').send(body)
}

/** The API key from `Authorization: Basic base64(key:)`, or null. */
function basicUser (header: string | undefined): string | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '')
  if (!m) return null
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  const user = colon < 0 ? decoded : decoded.slice(0, colon)
  return user === '' ? null : user
}

/** The edge checks, authentication, the rate limit and injected faults; false when the reply has been sent. */
function admit (state: ClinikoSimulatorState, request: FastifyRequest, reply: FastifyReply): boolean {
  const refuse = (status: number, body: string): false => { state.answered(status); void text(reply, status, body); return false }
  if (!USER_AGENT.test(request.headers['user-agent'] ?? '')) {
    state.stats.forbidden++
    return refuse(403, 'Forbidden: identify your application with a User-Agent such as "App name (dev@example.com)".\n')
  }
  const key = basicUser(request.headers.authorization)
  if (key === null || !state.knows(key) || shardOfKey(key) !== state.shard) {
    state.stats.unauthorized++
    void reply.header('www-authenticate', 'Basic realm="Application"')
    if (state.unauthorizedBody === 'json') {
      state.answered(401)
      void reply.code(401).type('application/json; charset=utf-8').send(ACCESS_DENIED_JSON)
      return false
    }
    return refuse(401, ACCESS_DENIED)
  }
  if (!/\bapplication\/json\b/i.test(request.headers.accept ?? '')) {
    state.stats.notAcceptable++
    return refuse(406, 'Not Acceptable: send Accept: application/json.\n')
  }
  return passes(state.verdict(key), {
    throttle: ({ resetAt }) => {
      state.stats.lastReset = Math.ceil(resetAt / 1000)
      const { rateLimitReset, retryAfter } = state.throttleHeaders
      if (rateLimitReset) void reply.header('x-ratelimit-reset', String(state.stats.lastReset))
      if (retryAfter) void reply.header('retry-after', String(Math.max(0, Math.ceil((resetAt - state.now()) / 1000))))
      return refuse(429, 'Retry later\n')
    },
    // Rails' own page for a 500; the proxy in front of Cliniko ends its words with a newline.
    error: status => refuse(status, status === 500 ? RAILS_500 : `${proxyErrorText(status)}\n`),
  })
}

/** An absolute link to another page of the same list, from the request's own host, path and query. */
function pageLink (request: FastifyRequest, page: number): string {
  const [path = '/', query = ''] = request.url.split('?', 2)
  const params = new URLSearchParams(query)
  params.delete('page')
  const out = new URLSearchParams({ page: String(page) })
  for (const [k, v] of params) out.append(k, v)
  return `${request.protocol}://${request.host}${path}?${out.toString()}`
}

/** The simulator as a Fastify plugin: GET /v1/<resource> for every resource and list variant. */
export const clinikoSimulator: FastifyPluginAsync<ClinikoSimulatorPluginOptions> = async (app, opts) => {
  const state = stateOf(opts, options => new ClinikoSimulatorState(options))
  const list = listCache({ seed: state.options.seed, recordCount: state.options.recordCount, shard: state.shard })

  app.setErrorHandler((err: { statusCode?: number }, _request, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    state.answered(status)
    return status === 500 ? text(reply, 500, RAILS_500) : reply.code(status).send({ message: 'Bad Request' })
  })

  const serve = (resource: ClinikoResource) => async (request: FastifyRequest, reply: FastifyReply) => {
    if (!admit(state, request, reply)) return reply
    const read = readPageQuery(resource, request.query as Record<string, unknown>)
    if ('errors' in read) {
      state.stats.rejected++
      state.answered(422)
      return reply.code(422).send({ message: 'Validation Failed', errors: read.errors })
    }
    const { page, perPage } = read.request
    const records = list(resource, read.request)
    const pages = Math.ceil(records.length / perPage)
    // A repeated page serves the page before it again; its links stay those of the page asked for.
    const from = (state.repeats(page) && page > 1 ? page - 2 : page - 1) * perPage
    const links: Record<string, string> = { self: pageLink(request, page) }
    if (page > 1) links.previous = pageLink(request, page - 1)
    if (page < pages) links.next = pageLink(request, state.nextPageOf(page))
    const latency = state.options.latencyMs ?? 0
    if (latency > 0) await delay(latency)
    state.countPage(resource, page)
    state.answered(200)
    // Built as text: the records are the clinic's JSON text, int64 numbers included, never re-serialised.
    const body = `{${JSON.stringify(CLINIKO_LISTS[resource].key)}:[${records.slice(from, from + perPage).join(',')}],` +
      `"total_entries":${records.length},"links":${JSON.stringify(links)}}`
    return reply.type('application/json; charset=utf-8').send(body)
  }

  for (const resource of CLINIKO_RESOURCES) app.get(`/v1/${CLINIKO_LISTS[resource].path}`, serve(resource))
}

/** A Cliniko simulator running alone on 127.0.0.1, for tests and benchmarks. */
export interface RunningClinikoSimulator extends RunningSimulator<ClinikoSimulatorState> {
  /** The API root to give the adapter (CLINIKO_BASE_URL): `${url}/v1`. */
  apiUrl: string
}

/** Starts a simulator on a free loopback port (or `port`); close() it at the end of the test. */
export async function startClinikoSimulator (options: ClinikoSimulatorOptions & { port?: number } = {}): Promise<RunningClinikoSimulator> {
  const running = await startAlone(clinikoSimulator, o => new ClinikoSimulatorState(o), options)
  return { ...running, apiUrl: `${running.url}/v1` }
}
