/** OCL's environment variables, and the adapter settings they give. */
import { z } from 'zod'
import { optionalEnv } from '../../lib/env.js'
import { DEFAULT_EXPORT_LIMITS, DEFAULT_EXPORT_WAIT, type OclSettings } from './adapter.js'

export const DEFAULT_OCL_BASE_URL = 'https://api.openconceptlab.org'

/**
 * OCL serves public sources without a token, so neither variable is required. But a gateway with neither set
 * has not been pointed at OCL by anyone: that is "not configured" (the sandbox simulator serves it when
 * SANDBOX is on). Setting OCL_BASE_URL alone means anonymous access to that server, e.g. the public OCL.
 */
export const oclEnv = z.object({
  OCL_BASE_URL: optionalEnv(z.url({ protocol: /^https?$/ }))
    .describe(`OCL API root (default ${DEFAULT_OCL_BASE_URL}). Setting it, or OCL_TOKEN, makes OCL live; with neither, OCL is not configured`),
  OCL_TOKEN: optionalEnv(z.string().min(1))
    .describe('OCL API token, sent as "Authorization: Token …"; unset = anonymous access (public sources only)'),
  OCL_EXPORT_POLL_SECONDS: z.coerce.number().positive().max(600).default(5)
    .describe('First wait while OCL generates an export (answering 208); doubled after each poll, up to 60 s'),
  OCL_EXPORT_MAX_POLLS: z.coerce.number().int().min(1).max(10_000).default(90)
    .describe('Polls of an export being generated before the job fails with upstream_timeout'),
  OCL_EXPORT_MAX_DOWNLOAD_BYTES: z.coerce.number().int().min(1024).default(DEFAULT_EXPORT_WAIT.maxDownloadBytes)
    .describe('Largest export zip downloaded; past it the job fails with upstream_response_too_large'),
  OCL_EXPORT_MAX_UNCOMPRESSED_BYTES: z.coerce.number().int().min(1024).default(DEFAULT_EXPORT_LIMITS.maxUncompressedBytes)
    .describe('Largest export.json once inflated; past it the job fails with upstream_response_too_large'),
  OCL_EXPORT_MAX_COMPRESSION_RATIO: z.coerce.number().positive().default(DEFAULT_EXPORT_LIMITS.maxCompressionRatio)
    .describe('Most inflated bytes per compressed byte of export.json (judged past its first MiB): a zip bomb fails with upstream_response_too_large'),
  OCL_EXPORT_MAX_ENTRIES: z.coerce.number().int().min(1).default(DEFAULT_EXPORT_LIMITS.maxEntries)
    .describe('Most entries in an export zip (OCL writes one)'),
})

/** The parsed OCL_* variables. */
export type OclEnv = z.output<typeof oclEnv>

/** The settings these variables give, or null when Ocl is not configured. */
export function oclSettingsFromEnv (e: OclEnv): OclSettings | null {
  if (e.OCL_BASE_URL === undefined && e.OCL_TOKEN === undefined) return null
  const pollInitialMs = Math.round(e.OCL_EXPORT_POLL_SECONDS * 1000)
  return {
    baseUrl: e.OCL_BASE_URL ?? DEFAULT_OCL_BASE_URL,
    token: e.OCL_TOKEN,
    pollInitialMs,
    pollMaxMs: Math.max(pollInitialMs, 60_000),
    maxPolls: e.OCL_EXPORT_MAX_POLLS,
    maxDownloadBytes: e.OCL_EXPORT_MAX_DOWNLOAD_BYTES,
    exportLimits: {
      maxUncompressedBytes: e.OCL_EXPORT_MAX_UNCOMPRESSED_BYTES,
      maxCompressionRatio: e.OCL_EXPORT_MAX_COMPRESSION_RATIO,
      maxEntries: e.OCL_EXPORT_MAX_ENTRIES,
    },
  }
}
