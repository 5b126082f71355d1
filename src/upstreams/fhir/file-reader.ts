/**
 * Reads one manifest file into the job's pages: downloads it as a stream (gunzipped when the server compressed it),
 * cuts it into NDJSON lines as the bytes arrive, skips the lines an earlier attempt stored, and saves pages of at
 * most {@link PAGE_RECORDS} records or `maxPageBytes` bytes, each with the checkpoint that says how far the file is
 * stored. Output lines are stored as they are; lines of `deleted` and `error` files are wrapped so a client can
 * tell them from the export's resources (docs/API.md, "FHIR Bulk Data").
 */
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { createGunzip, createInflate } from 'node:zlib'
import type { JobContext } from '../../contract/adapter.js'
import { UpstreamError } from '../../domain/errors.js'
import { errorCode } from '../../lib/values.js'
import type { FhirApi, JobIo } from './api.js'
import type { FhirCheckpoint } from './checkpoint.js'
import type { ManifestFile } from './manifest.js'
import { NdjsonLines } from './ndjson.js'
import { outcomeError } from './outcome.js'

const NEWLINE = Buffer.from('\n')
const INFLATE_CHUNK = 64 * 1024

/** Records per stored page. */
export const PAGE_RECORDS = 1000

/**
 * How a file read ended: all of it stored, or the server no longer has it (the export expired): its 404 or 410, or
 * the 403 with which object stores (S3, GCS, Azure) answer a signed link past its expiry.
 */
export type FileRead = 'stored' | { expired: 403 | 404 | 410 }

/** Errors of a body cut off mid-way (the network's, or a gzip stream that ends early): the file is read again. */
const BROKEN = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'Z_BUF_ERROR'])
/** Errors of bytes that are not the gzip or deflate they claim to be: reading them again gives the same bytes. */
const CORRUPT = new Set(['Z_DATA_ERROR', 'Z_STREAM_ERROR', 'Z_NEED_DICT'])

/** The wrapper of a `deleted` or `error` line: `{"manifestArray":…,"type":…,"resource":<the line>}`. */
export function wrapEntry (file: Pick<ManifestFile, 'array' | 'type'>, line: Buffer): Buffer {
  if (file.array === 'output') return line
  return Buffer.concat([Buffer.from(`{"manifestArray":${JSON.stringify(file.array)},"type":${JSON.stringify(file.type)},"resource":`), line, Buffer.from('}')])
}

/** What reading files needs besides the file: the job, its api and the limits. */
export interface FileReaderDeps {
  ctx: JobContext
  api: FhirApi
  io: JobIo
  maxRecordBytes: number
  maxPageBytes: number
}

/** Drops a body that will not be read further; undici reports a destroyed body as an 'error', which needs a listener. */
function discard (body: Readable): void {
  body.on('error', () => {})
  body.destroy()
}

function decoded (body: Readable, encoding: string | undefined): Readable {
  const e = (encoding ?? '').trim().toLowerCase()
  if (e === '' || e === 'identity') return body
  if (e === 'gzip' || e === 'x-gzip' || e === 'deflate') {
    // 64 KiB out at a time instead of zlib's 16: a quarter of the chunks, each a callback from the pool and a Buffer
    // (a microbenchmark of 100,000 records: the inflater's own cost per record fell from 1.6 to 0.6 µs).
    const inflate = e === 'deflate' ? createInflate({ chunkSize: INFLATE_CHUNK }) : createGunzip({ chunkSize: INFLATE_CHUNK })
    // pipe() does not pass a broken body on: without this the inflater would wait for bytes that never come.
    body.on('error', err => inflate.destroy(err))
    return body.pipe(inflate)
  }
  discard(body)
  throw new UpstreamError('invalid_upstream_response', `a FHIR file came with Content-Encoding "${e.slice(0, 20)}", which the gateway did not ask for`)
}

/**
 * Stores the file at `state.cp.file` from line `state.cp.line` on. `state.cp` follows every save, so that after a
 * failure it says how far the file got; once the file is stored it points at the next one. `percent` is reported with
 * the pages.
 */
export async function storeFile (d: FileReaderDeps, state: { cp: FhirCheckpoint }, percent: number): Promise<FileRead> {
  const cp = state.cp
  const manifest = cp.manifest
  const file = manifest?.files[cp.file]
  if (manifest === null || file === undefined) throw new Error('storeFile: no such file in the manifest')
  const what = `the FHIR ${file.array} file of ${file.type}`
  const opened = await d.api.open({
    method: 'GET',
    url: file.url,
    headers: { accept: 'application/fhir+ndjson', 'accept-encoding': 'gzip, deflate' },
    // The bearer token goes with the files only when the manifest says so: they may live in object storage.
    authorize: manifest.requiresAccessToken,
    what: 'a file of the FHIR export',
    suppliedBy: { baseUrl: d.api.baseUrl },
  }, d.io)
  if ('refused' in opened) {
    const status = opened.refused.status
    if (status === 404 || status === 410) return { expired: status }
    // A 403 where the token plays no part (no token asked for, or a file host elsewhere) is a link that expired; on
    // the server's own origin with its token it is a refusal of the client (upstream_unauthorized).
    const elsewhere = new URL(file.url).origin !== new URL(d.api.baseUrl).origin
    if (status === 403 && (elsewhere || !manifest.requiresAccessToken)) return { expired: status }
    throw outcomeError(`fhir GET ${what}`, status, opened.refused.body)
  }
  // A stored record is the wrapped line: the line gets what the wrapper leaves of the record limit.
  const lines = new NdjsonLines(what, Math.max(1, d.maxRecordBytes - wrapEntry(file, Buffer.alloc(0)).length))
  let at = cp
  /** Lines of the file skipped or put in a batch: a flush saves it as the lines stored, so it never counts a line not yet in the batch. */
  let seen = 0
  /** Of every line of the file read so far, skipped or stored: what `lineHash` is. */
  const hash = createHash('sha256')
  let batch: Buffer[] = []
  let bytes = 0
  /**
   * The page being saved while the next one fills: the download goes on during a save (a paused reader costs the
   * file's transfer about a tenth), and at most one save is in flight, so memory holds two pages at most. `at` is
   * the checkpoint of what has been handed to be saved; `state.cp` moves only once a save has committed.
   */
  let saving: Promise<void> = Promise.resolve()
  const flush = async (done: boolean): Promise<void> => {
    const page = batch
    const records = { ...at.records, [file.array]: at.records[file.array] + page.length }
    const next: FhirCheckpoint = done
      ? { ...at, file: at.file + 1, line: 0, lineHash: null, nextPage: at.nextPage + 1, records }
      : { ...at, line: seen, lineHash: hash.copy().digest('hex'), nextPage: at.nextPage + 1, records }
    const number = at.nextPage
    at = next
    batch = []
    bytes = 0
    const previous = saving
    await previous
    saving = d.ctx.savePage(number, page, next, { pagesDone: number, pagesTotal: null, percent }).then(() => { state.cp = next })
    // Observed now, awaited by the next flush or at the end: a failed save never goes unhandled meanwhile.
    saving.catch(() => {})
    if (done) await saving
  }
  /** The skipped lines must be the ones stored: a server may export other lines, or another order, when asked again. */
  const checkStored = (): void => {
    if (cp.lineHash === null || hash.copy().digest('hex') === cp.lineHash) return
    throw new UpstreamError('upstream_failed', `${what} no longer starts with the ${cp.line} lines an earlier attempt stored (the export was started again, or the server changed the file); submit the job again`)
  }
  const take = async (found: Buffer[]): Promise<void> => {
    for (const line of found) {
      if (seen < cp.line) { // stored by an earlier attempt
        hash.update(line).update(NEWLINE)
        if (++seen === cp.line) checkStored()
        continue
      }
      const record = wrapEntry(file, line)
      // The page is full without this line: it is saved first, and the line opens the next one.
      if (batch.length > 0 && bytes + record.length > d.maxPageBytes) await flush(false)
      batch.push(record)
      bytes += record.length
      // Counted and hashed once in the batch, never before: a flush saves both as what is stored.
      hash.update(line).update(NEWLINE)
      seen++
      if (batch.length === PAGE_RECORDS) await flush(false)
    }
  }
  const body = decoded(opened.stream.body, opened.stream.headers['content-encoding'])
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) await take(lines.push(chunk))
    await take(lines.end())
  } catch (err) {
    discard(opened.stream.body)
    discard(body)
    // The save in flight settles first: `state.cp` then says how far the file really got.
    await saving.catch(() => {})
    if (d.ctx.signal.aborted) throw d.ctx.signal.reason
    const code = errorCode(err)
    if (!(err instanceof UpstreamError) && code !== undefined && CORRUPT.has(code)) {
      throw new UpstreamError('invalid_upstream_response', `${what} is not valid gzip or deflate data (${code})`)
    }
    if (!(err instanceof UpstreamError) && code !== undefined && BROKEN.has(code)) {
      throw new UpstreamError(code === 'UND_ERR_BODY_TIMEOUT' ? 'upstream_timeout' : 'upstream_unavailable', `${what} broke off (${code})`)
    }
    throw err
  }
  await saving
  if (seen < cp.line) {
    throw new UpstreamError('invalid_upstream_response', `${what} is shorter than when an earlier attempt stored ${cp.line} of its lines`)
  }
  if (batch.length > 0) await flush(true)
  else {
    at = { ...at, file: at.file + 1, line: 0, lineHash: null }
    await d.ctx.saveCheckpoint(at, { pagesDone: at.nextPage - 1, pagesTotal: null, percent })
    state.cp = at
  }
  return 'stored'
}
