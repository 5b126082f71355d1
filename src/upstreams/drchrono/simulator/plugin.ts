/**
 * A strict DrChrono bulk-list simulator, served over real HTTP: the gateway serves it on its sandbox listener,
 * tests start it alone with {@link startDrchronoSimulator}. It answers the way DrChrono (Django REST Framework
 * + django-oauth-toolkit) does, never more kindly: 201 on POST, "In progress" polls, 404 for dead uuids,
 * 401 without the current token, 429/5xx and failed generations on demand. A page past the end of a list is
 * refused in one of the four ways DrChrono might (see {@link PastEndMode}); it counts every request, by page.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { passes } from '../../simulator-kit/admission.js'
import {
  DRF_SERVER_ERROR, INVALID_TOKEN, NOT_PROVIDED, refuseCredentials, sendServerError, throttledDetail,
} from '../../simulator-kit/django-rest.js'
import { acceptEmptyJsonBodies, startAlone, stateOf, type RunningSimulator, type SimulatorPluginOptions } from '../../simulator-kit/server.js'
import { DRCHRONO_RESOURCES, type DrchronoResource } from '../params.js'
import { readListQuery, selectionCache } from './lists.js'
import { recordAt } from './records.js'
import { SANDBOX_CREDENTIALS, type DrchronoSimulatorOptions } from './options.js'
import { DrchronoSimulatorState, type ListEntry } from './state.js'
import type { InProgressBody } from './stats.js'

export type DrchronoSimulatorPluginOptions = SimulatorPluginOptions<DrchronoSimulatorOptions, DrchronoSimulatorState>

/**
 * The body of a poll while the list is generated, by {@link InProgressBody}: the documented one, and others
 * DrChrono might send as well (the exact body is UNCONFIRMED).
 */
function inProgressBody (kind: InProgressBody, uuid: string): Record<string, unknown> {
  switch (kind) {
    case 'documented': return { status: 'In progress', uuid }
    case 'capitalised': return { status: 'In Progress', uuid }
    case 'pending': return { status: 'PENDING', uuid, detail: 'The list is being generated.' }
    case 'no-status': return { uuid, detail: 'Your request is being processed.' }
  }
}

/** django-oauth-toolkit's challenge. */
const BEARER = 'Bearer realm="api"'

/** Authentication, then rate limit and injected faults; false when the reply has been sent. */
function admit (state: DrchronoSimulatorState, request: FastifyRequest, reply: FastifyReply): boolean {
  const auth = request.headers.authorization
  if (auth === undefined || !/^Bearer\s+\S/i.test(auth)) return refuseCredentials(reply, state.stats, BEARER, NOT_PROVIDED)
  if (!state.acceptsAccessToken(auth.replace(/^Bearer\s+/i, ''))) return refuseCredentials(reply, state.stats, BEARER, INVALID_TOKEN)
  return passes(state.verdict(), {
    throttle: ({ seconds }) => {
      if (state.retryAfterHeader) void reply.header('retry-after', String(seconds))
      // Whether DrChrono keeps DRF's wait in the body is UNCONFIRMED: the setting takes it out.
      return reply.code(429).send({ detail: throttledDetail(seconds, state.options.throttleWaitInBody ?? true) })
    },
    error: status => sendServerError(reply, status),
  })
}

/** A POST's page as the request names it (1 when absent), for counting; undefined when it is not a page number. */
function pageParam (query: unknown): number | undefined {
  const raw = (query as Record<string, unknown>).page
  if (raw === undefined) return 1
  return typeof raw === 'string' && /^[1-9][0-9]{0,5}$/.test(raw) ? Number(raw) : undefined
}

/** DRF's paginator's refusal of a page past the last one. */
function refusePage (state: DrchronoSimulatorState, reply: FastifyReply, resource: DrchronoResource, page: number): FastifyReply {
  state.countInvalidPage(resource, page)
  return reply.code(404).send({ detail: 'Invalid page.' })
}

/** A page's records as DrChrono's `results` array, built as text: only this page's records are ever generated. */
function pageResults (entry: ListEntry, indices: Int32Array, seed: number): string {
  const from = (entry.page - 1) * entry.pageSize
  const to = Math.min(indices.length, from + entry.pageSize)
  const verbose = entry.params.verbose === true
  const records: string[] = []
  for (let k = from; k < to; k++) records.push(JSON.stringify(recordAt(entry.resource, seed, indices[k] as number, verbose)))
  return `[${records.join(',')}]`
}

/** The Complete body around a page's `results` (text, or bytes kept by `keepPages`). */
function completeBody (entry: ListEntry, count: number, results: string | Buffer): string | Buffer {
  const pages = Math.max(1, Math.ceil(count / entry.pageSize))
  const pagination = { count, pages, page_size: entry.pageSize, page: entry.page }
  const head = `{"status":"Complete","pagination":${JSON.stringify(pagination)},"uuid":${JSON.stringify(entry.uuid)},"results":`
  return typeof results === 'string' ? `${head}${results}}` : Buffer.concat([Buffer.from(head), results, Buffer.from('}')])
}

/** The simulator as a Fastify plugin; encapsulated, so its parsers and error handler stay inside its prefix. */
export const drchronoSimulator: FastifyPluginAsync<DrchronoSimulatorPluginOptions> = async (app, opts) => {
  const state = stateOf(opts, options => new DrchronoSimulatorState(options))
  const seed = state.options.seed ?? 1
  const select = selectionCache(seed, state.options.recordCount)
  const bodyOf = (entry: ListEntry): string | Buffer => {
    const indices = select(entry.resource, entry.params)
    if (state.options.keepPages !== true) return completeBody(entry, indices.length, pageResults(entry, indices, seed))
    const key = JSON.stringify([entry.resource, Object.entries(entry.params).sort(), entry.pageSize, entry.page])
    let results = state.keptPages.get(key)
    if (results === undefined) state.keptPages.set(key, results = Buffer.from(pageResults(entry, indices, seed)))
    return completeBody(entry, indices.length, results)
  }

  acceptEmptyJsonBodies(app, 'JSON parse error')
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })
  app.setErrorHandler((err: { statusCode?: number, code?: string, message: string }, request, reply) => {
    const status = err.statusCode ?? 500
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send({ detail: `Unsupported media type "${request.headers['content-type'] ?? ''}" in request.` })
    }
    return reply.code(status).send(status >= 500 ? DRF_SERVER_ERROR : { detail: err.message })
  })

  for (const resource of DRCHRONO_RESOURCES) {
    const path = `/api/${resource}_list`
    app.post(path, async (request, reply) => {
      state.countRequest(resource, pageParam(request.query))
      if (!admit(state, request, reply)) return reply
      const read = readListQuery(resource, request.query as Record<string, unknown>)
      if ('errors' in read) return reply.code(400).send(read.errors)
      const { params, page, pageSize } = read.request
      const count = select(resource, params).length
      // Page 1 always exists, even when empty; DRF's paginator refuses any page past the last one.
      const pastEnd = page > Math.max(1, Math.ceil(count / pageSize))
      if (pastEnd) state.countPastEnd(resource, page)
      const mode = state.pastEndMode
      if (pastEnd && mode === 'post-404') return refusePage(state, reply, resource, page)
      const entry = state.createList(resource, read.request, pastEnd && mode !== 'post-404' ? mode : undefined)
      if (!entry.doomed && !entry.vanishes && (entry.pastEnd === undefined || entry.pastEnd === 'complete-empty')) {
        // Halfway through the generation time: off the path of this POST's answer and of the poll that completes it.
        setTimeout(() => {
          if (state.lists.get(entry.uuid) === entry) entry.body ??= bodyOf(entry)
        }, (state.options.generationMs ?? 0) / 2).unref()
      }
      return reply.code(201).send({
        status: 'In progress',
        uuid: entry.uuid,
        description: `Call https://drchrono.com/api/${resource}_list?uuid=${entry.uuid} to get the list`,
      })
    })
    app.get(path, async (request, reply) => {
      const { uuid, ...rest } = request.query as Record<string, unknown>
      const issued = typeof uuid === 'string' ? state.issued(uuid) : undefined
      state.countRequest(resource, issued?.page)
      if (!admit(state, request, reply)) return reply
      state.stats.gets++
      if (issued?.pastEnd === true) state.countPastEnd(resource, issued.page)
      const unknown = Object.keys(rest)
      if (unknown.length > 0) return reply.code(400).send(Object.fromEntries(unknown.map(k => [k, ['Unknown query parameter.']])))
      if (typeof uuid !== 'string' || uuid === '') return reply.code(400).send({ uuid: ['This field is required.'] })
      const entry = state.liveList(uuid)
      if (!entry || entry.resource !== resource) return reply.code(404).send({ detail: 'Invalid uuid specified' })
      entry.polls++
      const elapsed = state.now() - entry.createdAt
      // A page past the end is refused only once its list is built, as any list is only Complete then.
      if (entry.polls <= (state.options.inProgressPolls ?? 2) || elapsed < (state.options.generationMs ?? 0)) {
        return reply.send(inProgressBody(state.options.inProgressBody ?? 'documented', uuid))
      }
      if (entry.doomed || entry.pastEnd === 'failed-500') {
        state.lists.delete(uuid)
        if (entry.doomed) state.stats.generationErrors++
        return reply.code(500).send({
          status: entry.doomed ? 'Error' : 'Failed', uuid, detail: 'An error occurred while generating the list. Please submit the request again.',
        })
      }
      if (entry.pastEnd === 'poll-404') {
        // The uuid dies with its refusal: polling it again says "Invalid uuid specified", as for any dead list.
        state.lists.delete(uuid)
        return refusePage(state, reply, resource, entry.page)
      }
      const body = entry.body ?? bodyOf(entry)
      entry.body = undefined
      // As Fastify labels a string, whichever the body is.
      return reply.type('application/json; charset=utf-8').send(body)
    })
  }

  app.post('/o/token/', async (request, reply) => {
    await state.tokenGate()
    const form = (request.body ?? {}) as Record<string, string | undefined>
    if (form.grant_type !== 'refresh_token') return reply.code(400).send({ error: 'unsupported_grant_type' })
    if (!form.refresh_token || !form.client_id) return reply.code(400).send({ error: 'invalid_request' })
    const clientOk = form.client_id === (state.options.clientId ?? SANDBOX_CREDENTIALS.clientId) &&
      form.client_secret === (state.options.clientSecret ?? SANDBOX_CREDENTIALS.clientSecret)
    // oauthlib: invalid_client is 401, invalid_grant 400 (RFC 6749 §5.2).
    if (!clientOk) { state.stats.failedRefreshes++; return reply.code(401).send({ error: 'invalid_client' }) }
    // django-oauth-toolkit rotates both tokens: the old access and refresh tokens stop working at once.
    const pair = state.rotateTokens(form.refresh_token)
    if (pair === null) return reply.code(state.options.invalidGrantStatus ?? 400).send({ error: 'invalid_grant' })
    if (state.takeLostTokenAnswer()) return reply.code(502).type('text/plain; charset=utf-8').send('Bad Gateway')
    return reply.send({
      access_token: pair.accessToken,
      refresh_token: pair.refreshToken,
      expires_in: pair.expiresIn,
      token_type: 'Bearer',
      scope: 'billing:read calendar:read clinical:read patients:read user:read',
    })
  })
}

/** A Drchrono simulator running alone on 127.0.0.1, for tests and benchmarks. */
export type RunningDrchronoSimulator = RunningSimulator<DrchronoSimulatorState>

/** Starts a simulator on a free loopback port (or `port`); close() it at the end of the test. */
export async function startDrchronoSimulator (options: DrchronoSimulatorOptions & { port?: number } = {}): Promise<RunningDrchronoSimulator> {
  return startAlone(drchronoSimulator, o => new DrchronoSimulatorState(o), options)
}
