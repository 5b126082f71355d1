/**
 * One FHIR export job: kick-off → status polls → files, in that order, each step saved in the checkpoint so a
 * resumed job goes on where the last attempt was (checkpoint.ts). An export that vanishes (status 404) or whose
 * files expire (404/410) is started again, at most `maxRestarts` times; the new export must list the same files as
 * the old one up to the file being read, and the job goes on from there. A cancelled job DELETEs its export.
 */
import type { JobContext } from '../../contract/adapter.js'
import { JobCancelledError, UpstreamError } from '../../domain/errors.js'
import { sleep } from '../../lib/time.js'
import { noteClamp, type FhirApi, type JobIo } from './api.js'
import { freshCheckpoint, readCheckpoint, type FhirCheckpoint } from './checkpoint.js'
import { storeFile } from './file-reader.js'
import { fileCounts, parseManifest, sameLayout, type Manifest } from './manifest.js'
import { outcomeError } from './outcome.js'
import { kickOffPath, typeList, type FhirParams, type FhirResource } from './params.js'
import { progressNote, retryWait } from './waits.js'

/** Limits of one job besides the api's waits. */
export interface ExportJobOptions {
  maxRestarts: number
  exportTimeoutMs: number
  maxRecordBytes: number
  maxPageBytes: number
}

/**
 * A broken download is read again (its stored lines skipped) until it breaks this many times in a row without
 * storing a page: a long file that breaks off now and then but gets further each time is read to its end.
 */
const FILE_ATTEMPTS = 3
/** The wait between polls when a 202 names none. */
const POLL_FALLBACK_MS = 5000
/**
 * A poll waits at least the export's age divided by this (within the bounds), whatever Retry-After says: a short
 * export is polled as often as the server asks, a long one less and less (after 10 s at 1 s a poll, about 28 polls
 * in the first minute, then every 6 s, …, up to FHIR_MAX_RETRY_AFTER_SECONDS). The SMART server blocks a client
 * for 5 minutes after 60 kick-off and status requests in a minute, and its `Retry-After: 1` would make 60.
 */
const POLL_BACKOFF_DIVISOR = 10

/** The wait before the next poll: the server's (clamped) or the export's age / 10, whichever is longer. */
export function pollWaitMs (askedMs: number, ageMs: number, bounds: { minMs: number, maxMs: number }): number {
  return Math.max(askedMs, Math.min(bounds.maxMs, Math.max(bounds.minMs, Math.floor(ageMs / POLL_BACKOFF_DIVISOR))))
}
/** A DELETE sent for a job that is ending gets this long: the job's own signal is already aborted. */
const CANCEL_MS = 10_000
/**
 * A kick-off under way when the job stops gets this long more to answer: its answer names the export to DELETE (or,
 * at shutdown, to go on with). Well within SHUTDOWN_TIMEOUT_SECONDS (10 s by default), so that a shutdown still
 * saves the status URL while the job's lease is held.
 */
const KICK_OFF_GRACE_MS = 4000

/** The kick-off's query: only the params given, `_type` normalised (no spaces). */
function kickOffUrl (api: FhirApi, resource: FhirResource, params: FhirParams): URL {
  const url = api.url(kickOffPath(resource, params))
  if (params._type !== undefined) url.searchParams.set('_type', (typeList(params._type) ?? []).join(','))
  if (params._since !== undefined) url.searchParams.set('_since', params._since)
  if (params._typeFilter !== undefined) url.searchParams.set('_typeFilter', params._typeFilter)
  return url
}

/** Runs the job to its end; `params` are validated. */
export async function runExport (ctx: JobContext, api: FhirApi, resource: FhirResource, params: FhirParams, o: ExportJobOptions): Promise<void> {
  const io: JobIo = { signal: ctx.signal, log: ctx.log, reportWait: (w, wait) => ctx.reportWait(w, wait), clampLogged: false }
  const state = { cp: readCheckpoint(ctx.checkpoint) ?? freshCheckpoint() }
  try {
    await exportLoop(ctx, api, io, state, resource, params, o)
  } catch (err) {
    const statusUrl = state.cp.statusUrl
    // A cancelled job tells the server it may stop, and so does a failed one: nobody will read that export. That is
    // an upstream failure, or any error of the last attempt (the job fails with internal_error). Shutdown, a lost
    // lease and an unexpected error with attempts left leave it running: another attempt goes on with it.
    const cancelled = ctx.signal.aborted && ctx.signal.reason instanceof JobCancelledError
    const failed = !ctx.signal.aborted && (err instanceof UpstreamError || ctx.lastAttempt)
    if (statusUrl !== null && (cancelled || failed)) await cancelExport(api, io, statusUrl)
    throw err
  }
}

/** DELETE the status URL; its answer changes nothing for the job, so a failure is only logged. */
export async function cancelExport (api: FhirApi, io: JobIo, statusUrl: string): Promise<void> {
  const own: JobIo = { ...io, signal: AbortSignal.timeout(CANCEL_MS), reportWait: () => {} }
  try {
    const res = await api.send({ method: 'DELETE', url: statusUrl, headers: { accept: 'application/json' }, authorize: true, what: 'the FHIR export\'s status URL', suppliedBy: { baseUrl: api.baseUrl }, maxAttempts: 2 }, own)
    io.log.info({ status: res.status }, 'fhir export deleted')
  } catch (err) {
    io.log.info({ code: (err as { code?: unknown }).code }, 'fhir export could not be deleted')
  }
}

async function exportLoop (
  ctx: JobContext, api: FhirApi, io: JobIo, state: { cp: FhirCheckpoint }, resource: FhirResource, params: FhirParams, o: ExportJobOptions
): Promise<void> {
  const save = async (cp: FhirCheckpoint): Promise<void> => {
    state.cp = cp
    await ctx.saveCheckpoint(cp)
  }
  /**
   * The export is gone (`status`: the 403, 404 or 410 that said so): run it again, or fail once that is exhausted.
   * An export whose status URL still answers (its files expired) is DELETEd first, best effort: nobody reads it.
   */
  const restart = async (why: string, status: number, release: boolean): Promise<void> => {
    const cp = state.cp
    if (cp.restarts >= o.maxRestarts) {
      const message = `the FHIR export ${why} ${cp.restarts + 1} time(s); the gateway started it again ${cp.restarts} time(s) (FHIR_MAX_EXPORT_RESTARTS)`
      throw new UpstreamError('upstream_failed', message, status)
    }
    io.log.info({ restarts: cp.restarts + 1, why }, 'fhir export started again')
    await save({ ...cp, statusUrl: null, kickedOffAt: null, restarts: cp.restarts + 1 })
    // After the save: a job stopped during the DELETE resumes with a new kick-off, not with the released export.
    if (release && cp.statusUrl !== null) await cancelExport(api, io, cp.statusUrl)
  }
  for (;;) {
    let cp = state.cp
    if (cp.statusUrl === null) {
      const statusUrl = await kickOff(api, io, resource, params)
      // Known to the catch in runExport before the save, which throws when the job was cancelled meanwhile (and lands
      // at shutdown: the next attempt goes on with this export).
      state.cp = { ...cp, statusUrl, kickedOffAt: Date.now() }
      await save(state.cp)
      cp = state.cp
    }
    if (cp.manifestOf !== cp.statusUrl || cp.manifest === null) {
      const manifest = await waitForManifest(api, io, cp, o)
      if ('gone' in manifest) { await restart(`vanished (its status URL answered ${manifest.gone})`, manifest.gone, false); continue }
      const old = cp.manifest
      const started = cp.file > 0 || cp.line > 0
      if (old !== null && started && !sameLayout(old, manifest, cp.file)) {
        throw new UpstreamError('upstream_failed', 'the FHIR export, started again after it expired, lists other files than the one the job had partly stored; submit the job again')
      }
      await ctx.setUpstreamInfo({
        transactionTime: manifest.transactionTime, requiresAccessToken: manifest.requiresAccessToken, files: fileCounts(manifest), restarts: cp.restarts,
      })
      await save({ ...cp, manifest, manifestOf: cp.statusUrl })
      cp = state.cp
    }
    const files = (cp.manifest as Manifest).files
    let expired: 403 | 404 | 410 | null = null
    while (state.cp.file < files.length && expired === null) {
      const percent = Math.min(99, Math.floor(100 * state.cp.file / files.length))
      for (let attempt = 1; ; attempt++) {
        const from = state.cp
        try {
          const read = await storeFile({ ctx, api, io, maxRecordBytes: o.maxRecordBytes, maxPageBytes: o.maxPageBytes }, state, percent)
          if (read !== 'stored') expired = read.expired
          break
        } catch (err) {
          const broken = err instanceof UpstreamError && (err.code === 'upstream_unavailable' || err.code === 'upstream_timeout')
          // This try stored lines: it does not count, the next one is the first of a new series.
          if (state.cp.file === from.file && state.cp.line > from.line) attempt = 0
          if (!broken || attempt >= FILE_ATTEMPTS || ctx.signal.aborted) throw err
          io.log.info({ attempt, code: err.code, line: state.cp.line }, 'fhir file download broke off; reading it again')
        }
      }
    }
    if (expired !== null) { await restart(`files expired (${expired})`, expired, true); continue }
    break
  }
  // Every file is stored: the files' URLs (signed links, credentials until they expire) are no longer needed, and the
  // checkpoint outlives the export. A resume from here reads no file.
  const m = state.cp.manifest
  const cp: FhirCheckpoint = { ...state.cp, manifest: m === null ? null : { ...m, files: m.files.map(f => ({ ...f, url: '' })) } }
  state.cp = cp
  await ctx.setUpstreamInfo({ records: cp.records, restarts: cp.restarts })
  await ctx.saveCheckpoint(cp, { pagesDone: cp.nextPage - 1, pagesTotal: cp.nextPage - 1, percent: 100 })
  // "Done with the files": the server may delete them now (the Bulk Data IG's DELETE after completion).
  if (cp.statusUrl !== null) await cancelExport(api, io, cp.statusUrl)
}

/** Starts an export; resolves with its status URL. */
async function kickOff (api: FhirApi, io: JobIo, resource: FhirResource, params: FhirParams): Promise<string> {
  const url = kickOffUrl(api, resource, params)
  const what = `fhir GET ${url.pathname}`
  // Accept exactly application/fhir+json: the SMART reference server refuses anything else, a list included.
  // Not idempotent, GET as it is: each kick-off starts an export. A connection lost after sending is not retried (the
  // server may have started one already, and a second would be built for nobody): the job fails with
  // upstream_unavailable. A failure before sending (connection refused, DNS) is still retried.
  // A job stopped while the kick-off is under way still reads its answer for a while (finishOnAbortMs): the export it
  // started is then DELETEd, not left to be built for nobody.
  const res = await api.send({ method: 'GET', url, headers: { accept: 'application/fhir+json', prefer: 'respond-async' }, authorize: true, idempotent: false, finishOnAbortMs: KICK_OFF_GRACE_MS }, io)
  if (res.status !== 202) {
    if (res.status >= 400) throw outcomeError(what, res.status, res.body)
    throw new UpstreamError('invalid_upstream_response', `${what} answered ${res.status}, not 202 Accepted`, res.status)
  }
  const location = res.headers['content-location']
  let statusUrl: URL | null = null
  try {
    if (location !== undefined && location !== '') statusUrl = new URL(location, url)
  } catch {
    statusUrl = null
  }
  if (statusUrl === null || (statusUrl.protocol !== 'https:' && statusUrl.protocol !== 'http:')) {
    throw new UpstreamError('invalid_upstream_response', `${what} answered 202 without a usable Content-Location`, 202)
  }
  return statusUrl.toString()
}

/** Polls the status URL until the manifest comes, or the export is gone (`gone`: the 404 or 410 that said so; start it again). */
async function waitForManifest (api: FhirApi, io: JobIo, cp: FhirCheckpoint, o: ExportJobOptions): Promise<Manifest | { gone: 404 | 410 }> {
  const statusUrl = cp.statusUrl as string
  const since = cp.kickedOffAt ?? Date.now()
  try {
    for (;;) {
      const res = await api.send({ method: 'GET', url: statusUrl, headers: { accept: 'application/json' }, authorize: true, what: 'the FHIR export\'s status URL', suppliedBy: { baseUrl: api.baseUrl } }, io)
      if (res.status === 200) return parseManifest(res.text(), res.status)
      if (res.status === 404 || res.status === 410) return { gone: res.status }
      if (res.status !== 202) {
        // A failed export is a 4xx/5xx OperationOutcome (IG: "Status Request — Error Status").
        const code = res.status === 401 || res.status === 403 ? 'upstream_unauthorized' : res.status < 400 ? 'invalid_upstream_response' : 'upstream_failed'
        throw outcomeError('fhir export status', res.status, res.body, code)
      }
      const asked = res.headers['retry-after']
      const now = Date.now()
      const wait = retryWait(asked, now, api.bounds, POLL_FALLBACK_MS)
      noteClamp(io, wait, 'status poll', asked)
      const waitMs = pollWaitMs(wait.ms, now - since, api.bounds)
      if (now + waitMs - since > o.exportTimeoutMs) {
        throw new UpstreamError('upstream_timeout', `the FHIR export was still in progress after ${Math.round(o.exportTimeoutMs / 1000)} s (FHIR_EXPORT_TIMEOUT_SECONDS)`, 202)
      }
      const note = progressNote(res.headers['x-progress'])
      io.reportWait('fhir-export', { reason: `the FHIR server's export${note === null ? '' : ` (${note})`}`, until: new Date(now + waitMs) })
      await sleep(waitMs, io.signal)
    }
  } finally {
    io.reportWait('fhir-export', null)
  }
}
