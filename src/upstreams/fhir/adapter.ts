/**
 * The FHIR Bulk Data adapter: `system`, `patient` and `group` jobs run one `$export` each (export-job.ts), through
 * the shared client, with SMART Backend Services tokens when a client id is configured (auth.ts).
 */
import type { JobContext, UpstreamAdapter } from '../../contract/adapter.js'
import type { UpstreamClient } from '../http.js'
import { jobParams } from '../job-params.js'
import { FhirApi } from './api.js'
import { SmartAuth, type SmartClient } from './auth.js'
import { runExport } from './export-job.js'
import { fhirParams, type FhirParams } from './params.js'

/** Where the adapter finds the server, who it is there, and how long it waits. */
export interface FhirSettings {
  /** The FHIR base URL ([base] of [base]/$export). */
  baseUrl: string
  /** SMART Backend Services; null: an open server, no Authorization header. */
  auth: SmartClient | null
  /**
   * Origins (`URL.origin`) besides the base URL's and the token endpoint's that may receive the bearer token: file
   * hosts or status URLs elsewhere that need it (FHIR_TOKEN_ORIGINS). Default none.
   */
  tokenOrigins?: readonly string[] | undefined
  /** Every wait between requests (Retry-After) is clamped to [minWaitMs, maxWaitMs]. */
  minWaitMs: number
  maxWaitMs: number
  /** New kick-offs after an export vanished or expired, before the job fails. */
  maxRestarts: number
  /** How long one export may stay in progress. */
  exportTimeoutMs: number
}

/** The defaults of the tuning settings (env.ts). */
export const DEFAULT_FHIR_TUNING = {
  minWaitMs: 1000,
  maxWaitMs: 60_000,
  maxRestarts: 3,
  // Big systems take hours to export; a day is past anything legitimate and ends "in progress forever".
  exportTimeoutMs: 24 * 3_600_000,
} as const

/** Bytes of records in one page, at most: one page is one transaction. */
const MAX_PAGE_BYTES = 16 * 1024 * 1024

/** The FHIR adapter: one per gateway; its token cache is shared by every job. */
export function fhirAdapter (settings: FhirSettings, client: UpstreamClient): UpstreamAdapter {
  const auth = settings.auth === null ? null : new SmartAuth(settings.auth, settings.baseUrl, client)
  const api = new FhirApi(settings.baseUrl, client, auth, { minMs: settings.minWaitMs, maxMs: settings.maxWaitMs }, settings.tokenOrigins ?? [])
  const options = {
    maxRestarts: settings.maxRestarts,
    exportTimeoutMs: settings.exportTimeoutMs,
    maxRecordBytes: client.limits.maxRecordBytes,
    // With the line being read beside it, a job holds no more than UPSTREAM_MAX_BYTES_IN_FLIGHT.
    maxPageBytes: Math.max(1, Math.min(MAX_PAGE_BYTES, client.limits.maxBytesInFlight - client.limits.maxRecordBytes)),
  }
  return {
    async run (ctx: JobContext): Promise<void> {
      ctx.signal.throwIfAborted()
      const { resource, params } = jobParams('fhir', fhirParams, ctx.resource, ctx.params)
      await runExport(ctx, api, resource, params as FhirParams, options)
    },
  }
}
