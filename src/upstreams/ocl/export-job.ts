/**
 * An `export` job: resolve the version (`latest` = newest released), download its export into a private
 * temp folder, and store its records in pages of {@link EXPORT_PAGE_SIZE}, concepts then mappings, in the
 * file's order.
 *
 * Resuming: the checkpoint pins the version, so a newer release cannot mix into a half-stored job. The file
 * is downloaded again from scratch; pages are numbered by position in the file, so the pages already stored
 * are simply not written again, and the last of them is compared with the new copy to prove it is the same file.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { UpstreamError } from '../../domain/errors.js'
import type { JobContext } from '../../contract/adapter.js'
import { invalidResponse, oclError, type OclApi } from './api.js'
import { ExportDownload, type ExportWaitOptions } from './export-download.js'
import { readExportZip, type ExportFileLimits, type ExportReadProgress } from './export-file.js'
import type { ExportElement } from './export-json.js'
import { isMnemonic, type OclExportParams } from './params.js'

/** Records per stored page. */
export const EXPORT_PAGE_SIZE = 1000

/** What an export job saves with each page; handed back on resume. */
export interface OclExportCheckpoint {
  kind: 'export'
  /** The version being read: a resumed job reads the same one, whatever was released meanwhile. */
  version: string
  /** Pages stored so far, numbered from 1 in file order. */
  pagesSaved: number
  /** SHA-256 of the last stored page's records, to recognise the same file on resume. */
  lastPageDigest: string | null
}

/** Where export files are spooled and how long OCL may take to generate one. */
export interface ExportJobOptions extends ExportWaitOptions {
  /** A folder for the per-job temp folder (default os.tmpdir()); the folder is removed when the job ends. */
  tempDir: string
  file: ExportFileLimits
  /**
   * A page is stored once its records reach this many bytes, if 1000 records have not come first: with the
   * record being read beside it, the job then holds no more than UPSTREAM_MAX_BYTES_IN_FLIGHT. Pages are cut at
   * the same places on every attempt as long as this setting stays the same.
   */
  maxPageBytes: number
}

export function readExportCheckpoint (raw: unknown): OclExportCheckpoint | null {
  const cp = raw as Partial<OclExportCheckpoint> | null
  if (cp?.kind !== 'export' || typeof cp.version !== 'string' || !isMnemonic(cp.version)) return null
  const pagesSaved = Number.isSafeInteger(cp.pagesSaved) && (cp.pagesSaved as number) > 0 ? cp.pagesSaved as number : 0
  const digest = typeof cp.lastPageDigest === 'string' ? cp.lastPageDigest : null
  return { kind: 'export', version: cp.version, pagesSaved: digest === null ? 0 : pagesSaved, lastPageDigest: pagesSaved > 0 ? digest : null }
}

/** `latest` → the newest released version, as `versions/?released=true&limit=1` lists it (newest first). */
async function resolveVersion (api: OclApi, params: OclExportParams, signal: AbortSignal): Promise<string> {
  if (params.version !== 'latest') return params.version
  const url = api.sourceUrl(params, 'versions')
  url.search = 'released=true&limit=1'
  const what = `OCL versions of ${params.ownerType}/${params.owner}/sources/${params.source}`
  const res = await api.get(url, signal)
  if (res.status !== 200) throw oclError(res, what)
  const list = res.json()
  if (!Array.isArray(list)) throw invalidResponse(what, 'the answer is not a JSON array', res.status)
  if (list.length === 0) throw new UpstreamError('upstream_not_found', `${what}: the source has no released version`)
  const newest = list[0] as { id?: unknown, released?: unknown } | null
  const id = newest?.id
  if (typeof id !== 'string' || !isMnemonic(id)) throw invalidResponse(what, 'the newest version has no usable "id"', res.status)
  // A server that ignored released=true would hand back HEAD or a draft: not what `latest` means.
  if (newest?.released === false || id === 'HEAD') throw invalidResponse(what, 'the newest version listed is not a released one', res.status)
  return id
}

const digestOf = (records: readonly string[]): string => {
  const hash = createHash('sha256')
  for (const record of records) hash.update(record).update('\n')
  return hash.digest('hex')
}

/** Cuts the records into pages and stores the ones a resumed job has not stored yet. */
class ExportPager {
  #batch: string[] = []
  #batchBytes = 0
  #page = 0
  #percent: number | null = null
  #digest: string | null = null

  constructor (
    private readonly ctx: JobContext,
    private readonly version: string,
    private readonly resumed: OclExportCheckpoint | null,
    private readonly maxPageBytes: number
  ) {}

  async add (elements: ExportElement[], progress: ExportReadProgress): Promise<void> {
    this.#percent = progress.totalBytes > 0 ? Math.min(99, Math.floor(100 * progress.bytes / progress.totalBytes)) : null
    for (const element of elements) {
      const want = element.array === 'concepts' ? 'Concept' : 'Mapping'
      // Records must say what they are; adding the field would mean re-serialising OCL's text.
      if (element.type !== want) throw invalidResponse('OCL export.json', `an element of "${element.array}" does not have "type": "${want}"`)
      if (this.#batch.length > 0 && this.#batchBytes + element.bytes > this.maxPageBytes) await this.#flush(false)
      this.#batch.push(element.text)
      this.#batchBytes += element.bytes
      if (this.#batch.length === EXPORT_PAGE_SIZE) await this.#flush(false)
    }
  }

  async finish (): Promise<void> {
    const stored = this.resumed?.pagesSaved ?? 0
    const rest = this.#batch.length > 0
    if (rest) await this.#flush(true)
    if (this.#page < stored) throw this.#changed()
    // The last page's save carried the final progress, unless there was no partial page left or the file
    // ended among pages an earlier attempt had stored: then say so now.
    if (!rest || this.#page <= stored) {
      await this.ctx.saveCheckpoint(this.#checkpoint(), { pagesDone: this.#page, pagesTotal: this.#page, percent: 100 })
    }
  }

  #checkpoint (): OclExportCheckpoint {
    return { kind: 'export', version: this.version, pagesSaved: this.#page, lastPageDigest: this.#digest }
  }

  #changed (): UpstreamError {
    return invalidResponse('OCL export', `version ${this.version}'s export differs from the one an earlier attempt stored; submit the job again`)
  }

  async #flush (last: boolean): Promise<void> {
    const records = this.#batch
    this.#batch = []
    this.#batchBytes = 0
    const page = ++this.#page
    this.#digest = digestOf(records)
    const stored = this.resumed?.pagesSaved ?? 0
    if (page < stored) return
    if (page === stored) {
      if (this.#digest !== this.resumed?.lastPageDigest) throw this.#changed()
      return
    }
    const progress = last ? { pagesDone: page, pagesTotal: page, percent: 100 } : { pagesDone: page, pagesTotal: null, percent: this.#percent }
    await this.ctx.savePage(page, records, this.#checkpoint(), progress)
  }
}

/** Runs an export job; `params` are validated. */
export async function runExport (ctx: JobContext, api: OclApi, params: OclExportParams, o: ExportJobOptions): Promise<void> {
  const resumed = readExportCheckpoint(ctx.checkpoint)
  const version = resumed?.version ?? await resolveVersion(api, params, ctx.signal)
  if (resumed === null) await ctx.saveCheckpoint({ kind: 'export', version, pagesSaved: 0, lastPageDigest: null } satisfies OclExportCheckpoint)
  ctx.log.debug({ version, resumedAtPage: resumed?.pagesSaved ?? 0 }, 'ocl export version chosen')

  const exportUrl = api.sourceUrl(params, version, 'export')
  const dir = await mkdtemp(join(o.tempDir, 'ocl-export-'))
  try {
    const zipPath = join(dir, 'export.zip')
    const info = await new ExportDownload(api, exportUrl, o, ctx.signal, ctx.log).toFile(zipPath)
    await ctx.setUpstreamInfo({ version, lastUpdated: info.lastUpdated, lastUpdatedTimezone: info.lastUpdatedTimezone })
    const pager = new ExportPager(ctx, version, resumed, o.maxPageBytes)
    await readExportZip(zipPath, ctx.signal, (elements, progress) => pager.add(elements, progress), o.file)
    await pager.finish()
  } finally {
    // Also on abort and error: an export can be hundreds of MB.
    await rm(dir, { recursive: true, force: true })
  }
}
