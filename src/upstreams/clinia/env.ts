/** Clinia's environment variables, and the adapter settings they give. */
import { z } from 'zod'
import { optionalEnv } from '../../lib/env.js'
import type { CliniaSettings } from './adapter.js'
import { MAX_JOB_OPERATIONS } from './params.js'

// An empty variable (CLINIA_API_KEY=) means unset, as a shell user expects.

export const cliniaEnv = z.object({
  CLINIA_BASE_URL: optionalEnv(z.url({ protocol: /^https?$/ }))
    .describe('Your workspace\'s host, https://{workspace}.clinia.cloud'),
  CLINIA_API_KEY: optionalEnv(z.string().min(1))
    .describe('Sent as X-Clinia-API-Key; unset = Clinia is not configured'),
  CLINIA_SOURCE_KEY: optionalEnv(z.string().regex(/^[a-zA-Z0-9-][\w-]{0,61}$/, 'expected a Clinia source key'))
    .describe('The data source the operations are written to'),
  CLINIA_MAX_OPERATIONS: z.coerce.number().int().min(1).max(MAX_JOB_OPERATIONS).default(1000)
    .describe('Operations per bulk request: a job\'s operations are sent in chunks of at most this many'),
  CLINIA_POLL_INITIAL_MS: z.coerce.number().int().min(1).max(60_000).default(500)
    .describe('Wait before the first status read of a bulk task; doubled after each PENDING'),
  CLINIA_POLL_MAX_MS: z.coerce.number().int().min(1).max(300_000).default(10_000)
    .describe('The longest wait between status reads of a bulk task'),
  CLINIA_TASK_TIMEOUT_SECONDS: z.coerce.number().int().min(1).default(3600)
    .describe('How long one bulk task may stay PENDING before the job fails with upstream_timeout'),
}).superRefine((e, ctx) => {
  // A key without its workspace and source would only fail at the first job: refuse it at start-up.
  if (e.CLINIA_API_KEY === undefined) return
  for (const name of ['CLINIA_BASE_URL', 'CLINIA_SOURCE_KEY'] as const) {
    if (e[name] === undefined) ctx.addIssue({ code: 'custom', path: [name], message: 'required when CLINIA_API_KEY is set' })
  }
})

export type CliniaEnv = z.output<typeof cliniaEnv>

const poll = (e: CliniaEnv) => ({
  pollInitialMs: e.CLINIA_POLL_INITIAL_MS,
  pollMaxMs: e.CLINIA_POLL_MAX_MS,
  taskTimeoutMs: e.CLINIA_TASK_TIMEOUT_SECONDS * 1000,
})

/** The settings these variables give, or null when Clinia is not configured. */
export function cliniaSettingsFromEnv (e: CliniaEnv): CliniaSettings | null {
  if (e.CLINIA_API_KEY === undefined || e.CLINIA_BASE_URL === undefined || e.CLINIA_SOURCE_KEY === undefined) return null
  return {
    baseUrl: e.CLINIA_BASE_URL,
    apiKey: e.CLINIA_API_KEY,
    sourceKey: e.CLINIA_SOURCE_KEY,
    maxOperations: e.CLINIA_MAX_OPERATIONS,
    ...poll(e),
  }
}
