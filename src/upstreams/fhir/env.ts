/** The FHIR Bulk Data upstream's environment variables, and the adapter settings they give. */
import { z } from 'zod'
import { optionalEnv } from '../../lib/env.js'
import { parseAllowedOrigins } from '../url-guard.js'
import { DEFAULT_FHIR_TUNING, type FhirSettings } from './adapter.js'
import { parseSigningKey } from './jwk.js'

const optionalSecret = optionalEnv(z.string().min(1))

/** The scope asked for when FHIR_SCOPE is unset: read access to every resource type, SMART v1 syntax. */
export const DEFAULT_SCOPE = 'system/*.read'

export const fhirEnv = z.object({
  FHIR_BASE_URL: optionalEnv(z.url({ protocol: /^https?$/ }))
    .describe('FHIR server base URL (the [base] of [base]/$export); unset = the FHIR upstream is not configured'),
  FHIR_CLIENT_ID: optionalSecret
    .describe('SMART Backend Services client id; unset = an open server, no Authorization header'),
  FHIR_PRIVATE_KEY: optionalSecret
    .describe('The private JWK (JSON, RS384 or ES384, with "kid") that signs the client assertions; required with FHIR_CLIENT_ID'),
  FHIR_TOKEN_URL: optionalEnv(z.url({ protocol: /^https?$/ }))
    .describe('The token endpoint; unset = discovered from [base]/.well-known/smart-configuration'),
  FHIR_TOKEN_ORIGINS: z.string().default('')
    .describe('Origins (scheme://host:port, comma-separated) besides FHIR_BASE_URL\'s and the token endpoint\'s that may receive the bearer token: file hosts or status URLs elsewhere that need it; default none'),
  FHIR_SCOPE: z.string().min(1).default(DEFAULT_SCOPE)
    .describe('The scope asked for with each token'),
  FHIR_MIN_RETRY_AFTER_SECONDS: z.coerce.number().positive().max(60).default(DEFAULT_FHIR_TUNING.minWaitMs / 1000)
    .describe('Shortest wait between status polls, whatever Retry-After says'),
  FHIR_MAX_RETRY_AFTER_SECONDS: z.coerce.number().positive().max(3600).default(DEFAULT_FHIR_TUNING.maxWaitMs / 1000)
    .describe('Longest wait between requests: a longer Retry-After (servers send hours, or an epoch) is cut to it'),
  FHIR_MAX_EXPORT_RESTARTS: z.coerce.number().int().min(0).max(100).default(DEFAULT_FHIR_TUNING.maxRestarts)
    .describe('New kick-offs after an export vanished (status 404) or its files expired (404/410), before the job fails with upstream_failed'),
  FHIR_EXPORT_TIMEOUT_SECONDS: z.coerce.number().positive().default(DEFAULT_FHIR_TUNING.exportTimeoutMs / 1000)
    .describe('How long one export may stay "in progress" before the job cancels it and fails with upstream_timeout'),
}).superRefine((e, ctx) => {
  if ((e.FHIR_CLIENT_ID === undefined) !== (e.FHIR_PRIVATE_KEY === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['FHIR_CLIENT_ID'], message: 'set FHIR_CLIENT_ID and FHIR_PRIVATE_KEY together, or neither' })
  }
  if (e.FHIR_PRIVATE_KEY !== undefined) {
    const key = parseSigningKey(e.FHIR_PRIVATE_KEY)
    if (typeof key === 'string') ctx.addIssue({ code: 'custom', path: ['FHIR_PRIVATE_KEY'], message: key })
  }
  const origins = parseAllowedOrigins(e.FHIR_TOKEN_ORIGINS)
  if ('problem' in origins) ctx.addIssue({ code: 'custom', path: ['FHIR_TOKEN_ORIGINS'], message: origins.problem })
  if (e.FHIR_MIN_RETRY_AFTER_SECONDS > e.FHIR_MAX_RETRY_AFTER_SECONDS) {
    ctx.addIssue({ code: 'custom', path: ['FHIR_MIN_RETRY_AFTER_SECONDS'], message: 'must not be above FHIR_MAX_RETRY_AFTER_SECONDS' })
  }
})

/** The parsed FHIR_* variables. */
export type FhirEnv = z.output<typeof fhirEnv>

/** FHIR_TOKEN_ORIGINS as origins (checked by the schema: a wrong one stops the gateway at start-up). */
function originsOf (value: string): string[] {
  const parsed = parseAllowedOrigins(value)
  return 'origins' in parsed ? parsed.origins : []
}

/** The settings these variables give, or null when the FHIR upstream is not configured. */
export function fhirSettingsFromEnv (e: FhirEnv): FhirSettings | null {
  if (e.FHIR_BASE_URL === undefined) return null
  const key = e.FHIR_PRIVATE_KEY === undefined ? null : parseSigningKey(e.FHIR_PRIVATE_KEY)
  return {
    baseUrl: e.FHIR_BASE_URL,
    auth: e.FHIR_CLIENT_ID === undefined || key === null || typeof key === 'string'
      ? null
      : { clientId: e.FHIR_CLIENT_ID, key, tokenUrl: e.FHIR_TOKEN_URL, scope: e.FHIR_SCOPE },
    tokenOrigins: originsOf(e.FHIR_TOKEN_ORIGINS),
    minWaitMs: Math.round(e.FHIR_MIN_RETRY_AFTER_SECONDS * 1000),
    maxWaitMs: Math.round(e.FHIR_MAX_RETRY_AFTER_SECONDS * 1000),
    maxRestarts: e.FHIR_MAX_EXPORT_RESTARTS,
    exportTimeoutMs: Math.round(e.FHIR_EXPORT_TIMEOUT_SECONDS * 1000),
  }
}
