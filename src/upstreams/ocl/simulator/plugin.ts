/**
 * A strict OCL simulator over real HTTP: the gateway serves it on its sandbox listener, tests start it alone with
 * {@link startOclSimulator}. It answers as oclapi2 does, never more kindly: Token auth, header pagination
 * with the silent limit fallback, the export state machine (204 → POST 202 → 208… → 302), and single-use
 * signed links on a separate path that refuse any request carrying an Authorization header, as S3 does.
 * Which headers a 429 carries (Retry-After, X-LimitRemaining-*) is unconfirmed: see OclThrottleHeaders.
 *
 * Stricter than OCL on one point, on purpose: an unknown query parameter is a 400 (OCL ignores it), so an
 * adapter that misspells a filter fails in tests instead of silently reading everything.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { passes } from '../../simulator-kit/admission.js'
import {
  DRF_FALSE, DRF_SERVER_ERROR, DRF_TRUE, INVALID_TOKEN, NOT_PROVIDED, refuseCredentials, sendServerError, throttledDetail,
} from '../../simulator-kit/django-rest.js'
import { startAlone, stateOf, type RunningSimulator, type SimulatorPluginOptions } from '../../simulator-kit/server.js'
import { Readable, Transform } from 'node:stream'
import yazl from 'yazl'
import { isMnemonic } from '../params.js'
import { parseInstant } from '../../../lib/values.js'
import {
  exportJsonChunks, findSource, lastUpdatedOf, listRecords, versionRecord, versionsOf, type SimSource, type SimVersion,
} from './terminology.js'
import { OclSimulatorState, versionKey, type OclSimulatorOptions } from './state.js'

export type OclSimulatorPluginOptions = SimulatorPluginOptions<OclSimulatorOptions, OclSimulatorState>

type Query = Record<string, string | string[] | undefined>
type SourceParams = { ownerType: string, owner: string, source: string }
const NOT_FOUND = { detail: 'Not found.' }
const TIMEZONE = 'America/New_York'
/** oclapi2's remaining-quota headers on a 429, by the quota that is spent. */
const LIMIT_REMAINING = {
  minute: { 'x-limitremaining-minute': '0', 'x-limitremaining-day': '9000' },
  day: { 'x-limitremaining-minute': '12', 'x-limitremaining-day': '0' },
} as const

/** Token auth, then injected faults; false when the reply has been sent. */
function admit (state: OclSimulatorState, request: FastifyRequest, reply: FastifyReply): boolean {
  const auth = request.headers.authorization
  if (auth !== undefined && auth !== `Token ${state.token}`) return refuseCredentials(reply, state.stats, 'Token', INVALID_TOKEN)
  return passes(state.verdict(), {
    throttle: ({ seconds }) => {
      const { retryAfter, limitRemaining } = state.throttleHeaders
      if (retryAfter) void reply.header('retry-after', String(seconds))
      if (limitRemaining !== 'absent') void reply.headers(LIMIT_REMAINING[limitRemaining])
      return reply.code(429).send({ detail: throttledDetail(seconds, retryAfter) })
    },
    error: status => sendServerError(reply, status),
  })
}

/** The source named by the path, visible to this request; otherwise the reply is sent and undefined returned. */
function sourceFor (state: OclSimulatorState, request: FastifyRequest, reply: FastifyReply): SimSource | undefined {
  const p = request.params as SourceParams
  const s = findSource(state.options, p.ownerType, p.owner, p.source)
  if (s === undefined) { void reply.code(404).send(NOT_FOUND); return undefined }
  if (!s.public && request.headers.authorization === undefined) {
    refuseCredentials(reply, state.stats, 'Token', NOT_PROVIDED)
    return undefined
  }
  return s
}

/** Query values as single strings; a repeated or unknown parameter is a 400 (see the file comment). */
function readQuery (query: Query, allowed: readonly string[], reply: FastifyReply): Record<string, string> | undefined {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(query)) {
    if (!allowed.includes(name) || typeof value !== 'string') {
      void reply.code(400).send({ detail: `Unsupported or repeated query parameter: ${name}` })
      return undefined
    }
    out[name] = value
  }
  return out
}

/** OCL's header pagination; limit 0, above 1000 or unreadable silently becomes 25, as oclapi2 does. */
function paginate (state: OclSimulatorState, request: FastifyRequest, reply: FastifyReply, items: string[], q: Record<string, string>): string {
  let limit = 25
  if (q.limit !== undefined) {
    const n = /^\d+$/.test(q.limit) ? Number(q.limit) : 0
    if (n >= 1 && n <= 1000) limit = n
    else state.stats.limitFallbacks++
  }
  const page = q.page !== undefined && /^\d+$/.test(q.page) && Number(q.page) >= 1 ? Number(q.page) : 1
  const pages = Math.ceil(items.length / limit)
  const slice = items.slice((page - 1) * limit, page * limit)
  const link = (n: number): string => {
    const url = new URL(request.url, `${request.protocol}://${request.host}`)
    url.searchParams.set('page', String(state.loopingNext ? page : n))
    return url.toString()
  }
  void reply.headers({ num_found: String(items.length), num_returned: String(slice.length), pages: String(pages), page_number: String(page) })
  if (page < pages) void reply.header('next', link(page + 1))
  if (page > 1) void reply.header('previous', link(page - 1))
  return `[${slice.join(',')}]`
}

/** The zip of a version's export: one export.json, generated as it is sent. */
function exportZip (state: OclSimulatorState, s: SimSource, v: SimVersion): Readable {
  const zip = new yazl.ZipFile()
  const text = (function * () { for (const piece of exportJsonChunks(state.options, s, v)) yield Buffer.from(piece) })()
  zip.addReadStream(Readable.from(text), 'export.json', { mtime: new Date(v.createdOn) })
  zip.end()
  const out = zip.outputStream as Readable
  const stallAfter = state.options.stallDownloadAfterBytes
  if (stallAfter === undefined) return out
  let sent = 0
  // Passes the first bytes, then holds every later chunk forever: a download stuck mid-way.
  return out.pipe(new Transform({
    transform (chunk: Buffer, _enc, done) {
      if (sent >= stallAfter) return
      sent += chunk.length
      done(null, chunk)
    },
  }))
}

function s3Error (reply: FastifyReply, code: string, message: string): FastifyReply {
  return reply.code(403).type('application/xml').send(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`)
}

/** The simulator as a Fastify plugin; encapsulated, so its handlers stay inside its prefix. */
export const oclSimulator: FastifyPluginAsync<OclSimulatorPluginOptions> = async (app, opts) => {
  const state = stateOf(opts, options => new OclSimulatorState(options))
  const prefix = app.prefix

  app.setNotFoundHandler((_request, reply) => reply.code(404).send(NOT_FOUND))
  app.setErrorHandler((err: { statusCode?: number, message: string }, _request, reply) => {
    const status = err.statusCode ?? 500
    return reply.code(status).send(status >= 500 ? DRF_SERVER_ERROR : { detail: err.message })
  })
  app.addHook('onRequest', async (request, reply) => {
    const ownerType = (request.params as Partial<SourceParams>).ownerType
    if (ownerType !== undefined && ownerType !== 'orgs' && ownerType !== 'users') return reply.code(404).send(NOT_FOUND)
  })

  app.get('/:ownerType/:owner/sources/:source/versions/', async (request, reply) => {
    if (!admit(state, request, reply)) return reply
    state.stats.versionLookups++
    const s = sourceFor(state, request, reply)
    if (s === undefined) return reply
    const q = readQuery(request.query as Query, ['released', 'limit', 'page'], reply)
    if (q === undefined) return reply
    const released = q.released === undefined ? undefined : DRF_TRUE.has(q.released) ? true : DRF_FALSE.has(q.released) ? false : null
    if (released === null) return reply.code(400).send({ detail: 'released must be true or false' })
    const versions = versionsOf(s).filter(v => released === undefined || v.released === released)
    const body = paginate(state, request, reply, versions.map(v => JSON.stringify(versionRecord(s, v))), q)
    return reply.type('application/json').send(body)
  })

  for (const list of ['concepts', 'mappings'] as const) {
    app.get(`/:ownerType/:owner/sources/:source/${list}/`, async (request, reply) => {
      if (!admit(state, request, reply)) return reply
      state.stats.listRequests++
      const s = sourceFor(state, request, reply)
      if (s === undefined) return reply
      const q = readQuery(request.query as Query, ['updatedSince', 'includeRetired', 'limit', 'page'], reply)
      if (q === undefined) return reply
      const sinceMs = q.updatedSince === undefined ? null : parseInstant(q.updatedSince)
      if (sinceMs === null && q.updatedSince !== undefined) return reply.code(400).send({ detail: 'updatedSince is not a valid date or datetime' })
      const retired = q.includeRetired
      if (retired !== undefined && !DRF_TRUE.has(retired) && !DRF_FALSE.has(retired)) return reply.code(400).send({ detail: 'includeRetired must be true or false' })
      const records = listRecords(state.options, s, list, { sinceMs, includeRetired: retired !== undefined && DRF_TRUE.has(retired) })
      return reply.type('application/json').send(paginate(state, request, reply, records, q))
    })
  }

  /** The version named by the path (admission, source and query already checked), or the reply is sent. */
  const versionFor = (request: FastifyRequest, reply: FastifyReply): { s: SimSource, v: SimVersion, key: string } | undefined => {
    if (!admit(state, request, reply)) return undefined
    const s = sourceFor(state, request, reply)
    if (s === undefined || readQuery(request.query as Query, [], reply) === undefined) return undefined
    const { version } = request.params as { version: string }
    if (version === 'HEAD') { void reply.code(405).send({ detail: `Method "${request.method}" not allowed.` }); return undefined }
    const v = s.versions.find(x => x.id === version)
    if (v === undefined || !isMnemonic(version)) { void reply.code(404).send(NOT_FOUND); return undefined }
    return { s, v, key: versionKey(s, v.id) }
  }
  const exportPath = '/:ownerType/:owner/sources/:source/:version/export/'

  app.get(exportPath, async (request, reply) => {
    state.stats.exportGets++
    const found = versionFor(request, reply)
    if (found === undefined) return reply
    const entry = state.exports.get(found.key)
    if (state.takeStale() || entry === undefined) return reply.code(204).send()
    if (entry.state === 'queued' && ++entry.polls <= (state.options.exportPolls ?? 2)) return reply.code(208).send()
    entry.state = 'ready'
    const current = state.readyMode === '302' || state.readyMode === '303'
    // oclapi2 names the headers Last-Updated; the servers that answered 200 named them lastUpdated.
    void reply.headers({
      [current ? 'Last-Updated' : 'lastUpdated']: lastUpdatedOf(found.s, found.v.id),
      [current ? 'Last-Updated-Timezone' : 'lastUpdatedTimezone']: TIMEZONE,
      'cache-control': 'no-cache, no-store, must-revalidate',
    })
    if (state.readyMode === 'zip200') {
      state.stats.downloads++
      return reply.code(200).type('application/zip').send(exportZip(state, found.s, found.v))
    }
    const link = state.issueLink(found.key)
    const url = state.exportLinkOverride ??
      `${request.protocol}://${request.host}${prefix}/signed/${link.id}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300&X-Amz-Signature=${link.signature}`
    if (state.readyMode === 'exportUrl200') return reply.code(200).header('exportURL', url).send()
    return reply.code(state.readyMode === '303' ? 303 : 302).header('location', url).send()
  })

  app.post(exportPath, async (request, reply) => {
    state.stats.exportPosts++
    const found = versionFor(request, reply)
    if (found === undefined) return reply
    const entry = state.exports.get(found.key)
    if (entry === undefined) {
      state.exports.set(found.key, { state: 'queued', polls: 0 })
      state.stats.exportsCreated++
      return reply.code(202).send()
    }
    if (entry.state === 'queued') return reply.code(409).send()
    // oclapi2 points at the export endpoint itself (header `URL`), not at the file.
    return reply.code(303).header('URL', `/${found.s.ownerType}/${found.s.owner}/sources/${found.s.source}/${found.v.id}/export/`).send()
  })

  app.delete(exportPath, async (request, reply) => {
    const found = versionFor(request, reply)
    if (found === undefined) return reply
    return reply.code(state.exports.delete(found.key) ? 204 : 404).send()
  })

  app.get('/signed/:id', async (request, reply) => {
    if (request.headers.authorization !== undefined) {
      state.stats.signedWithAuth++
      state.stats.downloadsRefused++
      return s3Error(reply, 'InvalidArgument', 'Only one auth mechanism allowed')
    }
    const link = state.links.get((request.params as { id: string }).id)
    const signature = (request.query as Query)['X-Amz-Signature']
    if (link === undefined || signature !== link.signature) { state.stats.downloadsRefused++; return s3Error(reply, 'SignatureDoesNotMatch', 'The request signature does not match') }
    if (link.used || Date.now() > link.expiresAt || state.takeRefusal()) {
      link.used = true
      state.stats.downloadsRefused++
      return s3Error(reply, 'AccessDenied', 'Request has expired')
    }
    link.used = true
    const [ownerType, owner, source, version] = link.versionKey.split('/') as [string, string, string, string]
    const s = findSource(state.options, ownerType, owner, source) as SimSource
    state.stats.downloads++
    return reply.code(200).type('application/zip').send(exportZip(state, s, s.versions.find(v => v.id === version) as SimVersion))
  })
}

/** A Ocl simulator running alone on 127.0.0.1, for tests and benchmarks. */
export type RunningOclSimulator = RunningSimulator<OclSimulatorState>

/** Starts a simulator on a free loopback port (or `port`); close() it at the end of the test. */
export async function startOclSimulator (options: OclSimulatorOptions & { port?: number } = {}): Promise<RunningOclSimulator> {
  return startAlone(oclSimulator, o => new OclSimulatorState(o), options)
}
