/**
 * A strict FHIR Bulk Data server over real HTTP, after the SMART reference server (docs/UPSTREAMS.md, FHIR Bulk Data): the
 * gateway serves it in sandbox mode, tests start it alone with {@link startFhirSimulator}. Kick-off wants exactly
 * `Accept: application/fhir+json` and `Prefer: respond-async`; status answers 202 with X-Progress and Retry-After,
 * then the manifest; files are NDJSON (gzip when asked); DELETE cancels. Every quirk is a setting (state.ts).
 *
 * Two differences from the SMART server, on purpose: an unknown query parameter is a 400 (the SMART server ignores
 * it), so an adapter that misspells one fails in tests; and the kick-off's 202 has no body (its OperationOutcome is
 * informational only), so a wire fault meant for a JSON answer strikes the manifest, which matters.
 */
import { Readable } from 'node:stream'
import { constants, createGzip } from 'node:zlib'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { passes, sendProxyError } from '../../simulator-kit/admission.js'
import { startAlone, stateOf, type RunningSimulator, type SimulatorPluginOptions } from '../../simulator-kit/server.js'
import { planExport, type ExportRequest } from './exports.js'
import { FhirSimulatorState, type FhirSimulatorOptions, type SimExport } from './state.js'
import { tokenEndpoint, tokenUrlOf } from './token-endpoint.js'

export type FhirSimulatorPluginOptions = SimulatorPluginOptions<FhirSimulatorOptions, FhirSimulatorState>

const KICK_OFF_QUERY = ['_type', '_since', '_typeFilter', '_outputFormat']
const NDJSON_FORMATS = new Set(['application/fhir+ndjson', 'application/ndjson', 'ndjson'])

/** An OperationOutcome answer, as the SMART server words them. */
function outcome (reply: FastifyReply, status: number, diagnostics: string, code = 'processing', severity = 'error'): FastifyReply {
  return reply.code(status).type('application/fhir+json').send({ resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] })
}

/** Rate limit and injected faults, then the token when one is needed; false when the reply has been sent. */
function admit (state: FhirSimulatorState, request: FastifyRequest, reply: FastifyReply, needsToken: boolean, limited = false): boolean {
  const auth = request.headers.authorization
  if (auth !== undefined) state.stats.withAuthorization++
  const through = passes(state.verdict(limited), {
    throttle: ({ retryAfter }) => reply.code(429).header('retry-after', retryAfter).type('text/html; charset=utf-8').send('Too Many Requests. Try again later.'),
    error: status => status === 500 ? outcome(reply, 500, 'Internal server error', 'exception') : sendProxyError(reply, status),
  })
  if (!through) return false
  if ((needsToken || auth !== undefined) && !state.validBearer(auth)) {
    state.stats.unauthorized++
    outcome(reply, 401, auth === undefined ? 'Authentication is required' : 'Invalid token', 'security')
    return false
  }
  return true
}

/** The Retry-After of a 202, as the state's setting says. */
function retryAfter (state: FhirSimulatorState): string | null {
  const seconds = state.options.retryAfterSeconds ?? 1
  switch (state.options.retryAfter ?? 'seconds') {
    case 'seconds': return String(seconds)
    case 'date': return new Date(Date.now() + seconds * 1000).toUTCString()
    case 'absurd': return '7200'
    case 'none': return null
  }
}

/** The simulator as a Fastify plugin; encapsulated, so its handlers stay inside its prefix. */
export const fhirSimulator: FastifyPluginAsync<FhirSimulatorPluginOptions> = async (app, opts) => {
  const state = stateOf(opts, options => new FhirSimulatorState(options))
  const prefix = app.prefix
  const base = (request: FastifyRequest): string => `${request.protocol}://${request.host}${prefix}`
  /** The simulator's base, on another origin when a setting names one (filesAt, statusAt). */
  const elsewhere = (request: FastifyRequest, origin: string | undefined): string => origin === undefined ? base(request) : `${origin}${prefix}`

  app.setNotFoundHandler((_request, reply) => outcome(reply, 404, 'Not found', 'not-found'))
  tokenEndpoint(app, state, prefix)

  app.get('/.well-known/smart-configuration', async (request, reply) => reply.send({
    token_endpoint: tokenUrlOf(request, prefix),
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    grant_types_supported: ['client_credentials'],
    scopes_supported: ['system/*.read', 'system/*.rs'],
    capabilities: ['client-confidential-asymmetric'],
  }))

  const kickOff = (level: ExportRequest['level']) => async (request: FastifyRequest, reply: FastifyReply) => {
    if (!admit(state, request, reply, state.options.secure === true, true)) return reply
    state.stats.kickOffs++
    if (request.headers.accept !== 'application/fhir+json') {
      state.stats.badHeaders++
      return outcome(reply, 400, 'The Accept header must be application/fhir+json', 'required')
    }
    if (!/\brespond-async\b/.test(String(request.headers.prefer ?? ''))) {
      state.stats.badHeaders++
      return outcome(reply, 400, 'The Prefer header must be respond-async', 'required')
    }
    const query = request.query as Record<string, string | string[]>
    for (const [name, value] of Object.entries(query)) {
      if (!KICK_OFF_QUERY.includes(name) || typeof value !== 'string') return outcome(reply, 400, `Unsupported or repeated parameter "${name}"`, 'invalid')
    }
    if (query._outputFormat !== undefined && !NDJSON_FORMATS.has(query._outputFormat as string)) return outcome(reply, 400, 'Only NDJSON output is supported', 'invalid')
    const one = (name: string): string | undefined => query[name] as string | undefined
    const req: ExportRequest = { level, groupId: (request.params as { groupId?: string }).groupId, _type: one('_type'), _since: one('_since'), _typeFilter: one('_typeFilter') }
    const planned = planExport(state.options, req)
    if (!Array.isArray(planned)) return outcome(reply, 400, planned.error, 'invalid')
    const files = state.options.reorderReexports === true && state.stats.kickOffs > 1 ? planned.map(f => ({ ...f, lines: [...f.lines].reverse() })) : planned
    // The SMART server's quirk: any Authorization at kick-off makes the export secure.
    const e = state.addExport(req, files, state.options.secure === true || request.headers.authorization !== undefined)
    if (state.options.kickOffDelayMs !== undefined) await new Promise(resolve => setTimeout(resolve, state.options.kickOffDelayMs))
    return reply.code(202).header('content-location', `${elsewhere(request, state.options.statusAt)}/bulkstatus/${e.id}`).send()
  }
  app.get('/$export', kickOff('system'))
  app.get('/Patient/$export', kickOff('patient'))
  app.get('/Group/:groupId/$export', kickOff('group'))

  const found = (request: FastifyRequest, reply: FastifyReply): SimExport | undefined => {
    const e = state.liveExport((request.params as { id: string }).id)
    if (e === undefined) void outcome(reply, state.options.goneStatus ?? 404, 'The requested export was not found (it may have been cancelled or expired)', 'not-found')
    return e
  }

  app.get('/bulkstatus/:id', async (request, reply) => {
    const e = state.liveExport((request.params as { id: string }).id)
    if (!admit(state, request, reply, e?.secure === true, true)) return reply
    state.stats.statusPolls++
    if (found(request, reply) === undefined || e === undefined) return reply
    e.polls++
    const transient = state.options.transientPolls ?? 0
    if (e.polls <= transient) {
      state.stats.transientErrors++
      return outcome(reply, 500, 'An unknown error occurred (transient_error). Please try again.', 'transient')
    }
    const ready = state.options.pollsBeforeReady ?? 2
    if (e.polls - transient <= ready || Date.now() - e.createdAt < (state.options.buildMs ?? 0)) {
      const after = retryAfter(state)
      if (after !== null) void reply.header('retry-after', after)
      const percent = Math.min(99, Math.floor(100 * (e.polls - transient - 1) / Math.max(1, ready)))
      return reply.code(202).header('x-progress', `${percent}% complete, Please wait...`).send()
    }
    e.state = 'ready'
    state.stats.manifests++
    const byType = e.files.map((f, i) => ({ f, url: `${elsewhere(request, state.options.filesAt)}/bulkfiles/${e.id}/${(i + 1) * 2}.${f.type}.ndjson` }))
    const entries = (array: string) => byType.filter(({ f }) => f.array === array).map(({ f, url }) => array === 'output' ? { type: f.type, url, count: f.lines.length } : { type: f.type, url })
    const ttl = state.options.exportTtlMs ?? 3_600_000
    return reply.code(200).header('expires', new Date(e.createdAt + ttl).toUTCString()).type('application/json').send({
      transactionTime: e.transactionTime,
      request: `${base(request)}/${e.request.level === 'system' ? '$export' : e.request.level === 'patient' ? 'Patient/$export' : `Group/${e.request.groupId ?? ''}/$export`}`,
      requiresAccessToken: e.secure,
      output: entries('output'),
      deleted: entries('deleted'),
      error: entries('error'),
    })
  })

  app.delete('/bulkstatus/:id', async (request, reply) => {
    // No token needed, even for a secure export (the SMART server's DELETE).
    const e = found(request, reply)
    if (e === undefined) return reply
    e.state = 'cancelled'
    state.stats.cancels++
    return outcome(reply, 202, 'The procedure was canceled', 'informational', 'information')
  })

  app.get('/bulkfiles/:id/:file', async (request, reply) => {
    const { id, file } = request.params as { id: string, file: string }
    const e = state.liveExport(id)
    if (!admit(state, request, reply, e?.secure === true)) return reply
    const index = /^(\d+)\.[A-Za-z]+\.ndjson$/.exec(file)
    const f = index === null ? undefined : e?.files[Number(index[1]) / 2 - 1]
    if (e === undefined || f === undefined || e.state !== 'ready' || state.takeMissingFile()) {
      state.stats.downloadsRefused++
      return outcome(reply, 404, 'The exported resources have been deleted', 'not-found')
    }
    if (state.takeExpiredFile()) {
      state.stats.downloadsRefused++
      return outcome(reply, 410, 'The requested file has expired; the file expired', 'expired')
    }
    if (state.takeForbiddenFile()) {
      state.stats.downloadsRefused++
      return reply.code(403).type('application/xml').send('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>')
    }
    state.countDownload(id, e.files.indexOf(f))
    const cut = state.breakAfter(id, e.files.indexOf(f))
    const body = Readable.from((async function * () {
      for (const [i, line] of f.lines.entries()) {
        if (cut !== null && i === cut) {
          // The connection drops mid-body, once what came before it has gone out.
          await new Promise(resolve => setTimeout(resolve, 20))
          reply.raw.destroy()
          return
        }
        yield Buffer.from(`${line}\n`)
      }
    })())
    void reply.code(200).type('application/fhir+ndjson')
    if (!/\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) return reply.send(body)
    state.stats.gzipped++
    if (state.options.corruptGzip === true) {
      return reply.header('content-encoding', 'gzip').send(Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03]), Buffer.alloc(64, 0xff)]))
    }
    // A download that breaks off sends each line as it goes (flushed), so the lines before the break arrive.
    return reply.header('content-encoding', 'gzip').send(body.pipe(createGzip(cut === null ? {} : { flush: constants.Z_SYNC_FLUSH })))
  })
}

/** A FHIR simulator running alone on 127.0.0.1, for tests and benchmarks. */
export type RunningFhirSimulator = RunningSimulator<FhirSimulatorState>

/** Starts a simulator on a free loopback port (or `port`); close() it at the end of the test. */
export async function startFhirSimulator (options: FhirSimulatorOptions & { port?: number } = {}): Promise<RunningFhirSimulator> {
  return startAlone(fhirSimulator, o => new FhirSimulatorState(o), options)
}
