/**
 * Gets one source version's export file onto local disk, following OCL's export protocol:
 *
 *   GET  …/{version}/export/   302/303 Location → the signed URL (current servers)
 *                              200 + exportURL header → the signed URL; 200 + zip body → the file (old servers)
 *                              204 → none exists: POST to create it;  208 → being generated: poll
 *   POST …/{version}/export/   202 queued, 409 (or 208) already queued → poll;  303 exists → GET again
 *
 * Signed URLs are short-lived and single-use, so each is downloaded at once, without the OCL token, and a
 * download that fails (link refused, connection broken) starts over from the GET for a fresh link.
 */
import { createWriteStream } from 'node:fs'
import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Logger } from 'pino'
import { sleep } from '../../lib/time.js'
import type { UpstreamResponse } from '../http.js'
import { UpstreamError } from '../../domain/errors.js'
import { tooLarge } from '../../contract/record-limits.js'
import { invalidResponse, oclError, type OclApi } from './api.js'
import { errorCode } from '../../lib/values.js'

/** How long the adapter waits for OCL to generate an export, how often it may ask for a fresh link, and how much it downloads. */
export interface ExportWaitOptions {
  /** The wait before the first poll of a 208; doubled after each, up to pollMaxMs. */
  pollInitialMs: number
  pollMaxMs: number
  /** Polls (answers 204 after a POST, or 208) before failing with upstream_timeout. */
  maxPolls: number
  /** Downloads tried, each with a fresh link, before failing. */
  maxDownloadAttempts: number
  /** The largest export file downloaded (OCL_EXPORT_MAX_DOWNLOAD_BYTES): the download stops as it crosses it. */
  maxDownloadBytes: number
}

/** What OCL said about the export it served. */
export interface ExportInfo {
  /** The `Last-Updated` (oclapi2) or `lastUpdated` (older servers) header: when the newest record changed. */
  lastUpdated: string | null
  /** Its time zone, from `Last-Updated-Timezone` / `lastUpdatedTimezone` (OCL sends naive datetimes). */
  lastUpdatedTimezone: string | null
}

type Ready = { info: ExportInfo } & ({ kind: 'link', url: URL } | { kind: 'body', body: Readable, headers: Record<string, string> })

const REDIRECTS = new Set([301, 302, 303, 307, 308])
/** POSTs that may create an export in one job; a GET that keeps saying 204 after them is polled instead. */
const MAX_POSTS = 3
/** Errors of a body cut off mid-transfer: worth a fresh link, not a failed job. */
const BROKEN_BODY = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'UND_ERR_SOCKET',
  'UND_ERR_BODY_TIMEOUT', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'])

function header (headers: Record<string, string>, ...names: string[]): string | null {
  for (const name of names) {
    const value = headers[name]?.trim()
    // Django renders a missing value as "None".
    if (value !== undefined && value !== '' && value !== 'None') return value
  }
  return null
}

function infoOf (headers: Record<string, string>): ExportInfo {
  return {
    lastUpdated: header(headers, 'last-updated', 'lastupdated'),
    lastUpdatedTimezone: header(headers, 'last-updated-timezone', 'lastupdatedtimezone'),
  }
}

const downloadTooLarge = (limit: number): UpstreamError => tooLarge('OCL export file', limit, 'OCL_EXPORT_MAX_DOWNLOAD_BYTES')

/** Counts the bytes going through, and fails as soon as they pass `limit`: neither disk nor socket sees more. */
function byteLimit (limit: number): Transform {
  let seen = 0
  return new Transform({
    transform (chunk: Buffer, _enc, done) {
      seen += chunk.length
      done(seen > limit ? downloadTooLarge(limit) : null, chunk)
    },
  })
}

/**
 * Writes a download of at most `maxBytes` to `path`; a body cut off mid-way becomes upstream_unavailable /
 * upstream_timeout. A Content-Length past the limit is refused before a byte is read.
 */
async function spool (body: Readable, headers: Record<string, string>, path: string, signal: AbortSignal, maxBytes: number): Promise<void> {
  if (Number(headers['content-length']) > maxBytes) {
    discard(body)
    throw downloadTooLarge(maxBytes)
  }
  try {
    await pipeline(body, byteLimit(maxBytes), createWriteStream(path), { signal })
  } catch (err) {
    if (signal.aborted) throw signal.reason
    if (err instanceof UpstreamError) throw err
    const code = errorCode(err)
    if (code === undefined || !BROKEN_BODY.has(code)) throw err // e.g. ENOSPC: ours, not OCL's
    throw new UpstreamError(code === 'UND_ERR_BODY_TIMEOUT' ? 'upstream_timeout' : 'upstream_unavailable', `OCL export download broke off (${code})`)
  }
}

/** Drops a body that will not be read; undici reports a destroyed body as an 'error', which needs a listener. */
function discard (body: Readable): void {
  body.on('error', () => {})
  body.destroy()
}

/** Reads an (empty or small) body to its end, so that its connection goes back to the pool. */
function drain (body: Readable): void {
  body.on('error', () => {})
  body.resume()
}

/** Whether a failed download is worth another try with a fresh link. */
function retriable (err: unknown): boolean {
  if (!(err instanceof UpstreamError)) return false
  // stream() reports a refused link as upstream_failed with the status: 403/404/410 = used or expired.
  if (err.code === 'upstream_failed') return err.upstreamStatus === 403 || err.upstreamStatus === 404 || err.upstreamStatus === 410
  return err.code === 'upstream_unavailable' || err.code === 'upstream_timeout'
}

/** One export job's way to its file: the export state machine, then the download. */
export class ExportDownload {
  readonly #what: string

  constructor (
    private readonly api: OclApi,
    private readonly exportUrl: URL,
    private readonly o: ExportWaitOptions,
    private readonly signal: AbortSignal,
    private readonly log: Logger
  ) {
    this.#what = `OCL export ${exportUrl.pathname}`
  }

  /** Downloads the export zip to `path` and returns what OCL said about it. */
  async toFile (path: string): Promise<ExportInfo> {
    for (let attempt = 1; ; attempt++) {
      const ready = await this.#ready()
      try {
        // Downloaded at once: the signed link is short-lived and single-use.
        const { body, headers } = ready.kind === 'body' ? ready : await this.api.download(ready.url, this.signal)
        await spool(body, headers, path, this.signal, this.o.maxDownloadBytes)
        return ready.info
      } catch (err) {
        if (ready.kind === 'body') discard(ready.body)
        if (this.signal.aborted) throw this.signal.reason
        if (!retriable(err) || attempt >= this.o.maxDownloadAttempts) {
          if (err instanceof UpstreamError && err.code === 'upstream_failed') {
            throw new UpstreamError('upstream_failed', `${this.#what}: the download link was refused (${err.upstreamStatus ?? '?'}) ${attempt} time(s)`, err.upstreamStatus)
          }
          throw err
        }
        // The error names no URL: the signed link is a credential.
        this.log.info({ attempt, code: (err as UpstreamError).code, status: (err as UpstreamError).upstreamStatus }, 'ocl export download failed; asking OCL for a fresh link')
      }
    }
  }

  /** Walks the export state machine until OCL offers the file. */
  async #ready (): Promise<Ready> {
    let polls = 0
    let posts = 0
    const wait = async (): Promise<void> => {
      if (++polls > this.o.maxPolls) {
        throw new UpstreamError('upstream_timeout', `${this.#what}: OCL was still generating the export after ${this.o.maxPolls} polls`)
      }
      await sleep(Math.min(this.o.pollMaxMs, this.o.pollInitialMs * 2 ** Math.min(polls - 1, 30)), this.signal)
    }
    for (;;) {
      const opened = await this.api.open(this.exportUrl, this.signal)
      if ('response' in opened) return this.#redirect(opened.response)
      const { status, headers, body } = opened.stream
      if (status === 200) {
        const link = header(headers, 'exporturl')
        if (link === null) return { kind: 'body', body, headers, info: infoOf(headers) }
        drain(body)
        return { kind: 'link', url: this.#link(link, status), info: infoOf(headers) }
      }
      drain(body) // 204 and 208 carry no body
      if (status === 204 && posts < MAX_POSTS) {
        posts++
        if (await this.#create() === 'exists') continue // GET again at once: it now redirects
        this.log.debug({ posts }, 'ocl export requested')
        await wait()
      } else if (status === 204 || status === 208 || status === 202) {
        await wait()
      } else {
        throw invalidResponse(this.#what, `OCL answered ${status} unexpectedly`, status)
      }
    }
  }

  #redirect (res: UpstreamResponse): Ready {
    if (!REDIRECTS.has(res.status)) throw oclError(res, this.#what)
    const location = header(res.headers, 'location')
    if (location === null) throw invalidResponse(this.#what, `OCL answered ${res.status} without a Location`, res.status)
    return { kind: 'link', url: this.#link(location, res.status), info: infoOf(res.headers) }
  }

  #link (value: string, status: number): URL {
    let url: URL | undefined
    try {
      url = new URL(value, this.exportUrl)
    } catch {
      url = undefined
    }
    if (url !== undefined && (url.protocol === 'https:' || url.protocol === 'http:')) return url
    throw invalidResponse(this.#what, `OCL answered ${status} with an unusable download link`, status)
  }

  /** POSTs the export request: 'queued' when OCL is (or already was) generating it, 'exists' when it is ready. */
  async #create (): Promise<'queued' | 'exists'> {
    const res = await this.api.post(this.exportUrl, this.signal)
    // 409 is the documented "already queued"; oclapi2's code answers 208 for the same case.
    if (res.status === 409 || res.status === 208 || res.status === 202 || res.status === 201 || res.status === 200) return 'queued'
    if (res.status === 303) return 'exists'
    throw oclError(res, `${this.#what} (POST)`)
  }
}
