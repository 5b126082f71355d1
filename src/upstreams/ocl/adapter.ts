/**
 * The OCL (Open Concept Lab) adapter: `export` reads a source version's export file, `changes` pages through
 * the concepts and mappings updated since a time. See export-job.ts and changes-job.ts.
 */
import { tmpdir } from 'node:os'
import type { UpstreamClient } from '../http.js'
import type { JobContext, UpstreamAdapter } from '../../contract/adapter.js'
import { OclApi, type OclConnection } from './api.js'
import { runChanges } from './changes-job.js'
import type { ExportWaitOptions } from './export-download.js'
import type { ExportFileLimits } from './export-file.js'
import { runExport, type ExportJobOptions } from './export-job.js'
import { oclParams, type OclChangesParams, type OclExportParams } from './params.js'
import { jobParams } from '../job-params.js'

/** Where and how the adapter talks to OCL; omitted tuning takes the defaults below. */
export interface OclSettings extends OclConnection, Partial<ExportWaitOptions> {
  /** Where export files are spooled while a job reads them (default os.tmpdir()). */
  tempDir?: string
  /** What an export zip may hold (OCL_EXPORT_MAX_*); the record limit is the client's. */
  exportLimits?: Partial<Omit<ExportFileLimits, 'maxRecordBytes'>>
}

const GiB = 1024 ** 3

/**
 * Exports of big sources (CIEL) take minutes to generate: poll from 5 s, doubling to 1 min, for ~1.5 h.
 * CIEL's export, the largest OCL serves, is ~100 MB zipped: 2 GiB leaves twenty times that.
 */
export const DEFAULT_EXPORT_WAIT: ExportWaitOptions = {
  pollInitialMs: 5000,
  pollMaxMs: 60_000,
  maxPolls: 90,
  maxDownloadAttempts: 3,
  maxDownloadBytes: 2 * GiB,
}

/**
 * OCL's zip holds one export.json of JSON text, which deflates 5 to 30 times; CIEL's is ~1 GB inflated. A zip
 * bomb inflates ~1000 times, and the inflated limit stops one of any ratio.
 */
export const DEFAULT_EXPORT_LIMITS: Omit<ExportFileLimits, 'maxRecordBytes'> = { maxEntries: 100, maxUncompressedBytes: 16 * GiB, maxCompressionRatio: 200 }

/** The OCL adapter: one per gateway, stateless between jobs. */
export function oclAdapter (settings: OclSettings, client: UpstreamClient): UpstreamAdapter {
  const api = new OclApi(settings, client)
  const exportOptions: ExportJobOptions = {
    pollInitialMs: settings.pollInitialMs ?? DEFAULT_EXPORT_WAIT.pollInitialMs,
    pollMaxMs: settings.pollMaxMs ?? DEFAULT_EXPORT_WAIT.pollMaxMs,
    maxPolls: settings.maxPolls ?? DEFAULT_EXPORT_WAIT.maxPolls,
    maxDownloadAttempts: Math.max(1, settings.maxDownloadAttempts ?? DEFAULT_EXPORT_WAIT.maxDownloadAttempts),
    maxDownloadBytes: settings.maxDownloadBytes ?? DEFAULT_EXPORT_WAIT.maxDownloadBytes,
    tempDir: settings.tempDir ?? tmpdir(),
    file: { ...DEFAULT_EXPORT_LIMITS, ...settings.exportLimits, maxRecordBytes: client.limits.maxRecordBytes },
    maxPageBytes: Math.max(1, client.limits.maxBytesInFlight - client.limits.maxRecordBytes),
  }
  return {
    async run (ctx: JobContext): Promise<void> {
      ctx.signal.throwIfAborted()
      const { resource, params } = jobParams('ocl', oclParams, ctx.resource, ctx.params)
      if (resource === 'export') await runExport(ctx, api, params as OclExportParams, exportOptions)
      else await runChanges(ctx, api, params as OclChangesParams)
    },
  }
}
