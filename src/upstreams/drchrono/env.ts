/** DrChrono's environment variables, and the adapter settings they give. */
import { z } from 'zod'
import { optionalEnv } from '../../lib/env.js'
import type { DrchronoSettings } from './adapter.js'

// An empty variable (DRCHRONO_REFRESH_TOKEN=) means unset, as a shell user expects.
const optionalSecret = optionalEnv(z.string().min(1))

export const drchronoEnv = z.object({
  DRCHRONO_BASE_URL: z.url({ protocol: /^https?$/ }).default('https://app.drchrono.com')
    .describe('DrChrono host; the bulk lists live under /api and the token endpoint at /o/token/'),
  DRCHRONO_ACCESS_TOKEN: optionalSecret.describe('OAuth2 access token; unset = DrChrono is not configured'),
  DRCHRONO_REFRESH_TOKEN: optionalSecret.describe('OAuth2 refresh token; with the access token it seeds the stored pair, which DrChrono rotates at every refresh (kept encrypted with TOKEN_ENCRYPTION_KEY)'),
  DRCHRONO_CLIENT_ID: optionalSecret.describe('OAuth2 client id, for refreshing'),
  DRCHRONO_CLIENT_SECRET: optionalSecret.describe('OAuth2 client secret, for refreshing'),
  DRCHRONO_PAGE_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(4)
    .describe('Pages of one job generated and fetched at the same time'),
  DRCHRONO_POLL_INTERVAL_MS: z.coerce.number().int().min(1).max(60_000).default(500)
    .describe('Shortest wait before a page\'s first poll; later polls follow how long the job\'s pages take to generate'),
  DRCHRONO_SPECULATIVE_PAGES: z.coerce.number().int().min(1).max(16).optional()
    .describe('Pages POSTed before the list\'s size is known (default: DRCHRONO_PAGE_CONCURRENCY); 1 = page 1 alone first, no POST past the end'),
  DRCHRONO_REQUESTS_PER_HOUR: z.coerce.number().int().min(1).max(1_000_000).default(500)
    .describe('DrChrono\'s per-application budget: requests per clock hour (UTC), shared by every job of every replica'),
  DRCHRONO_REQUESTS_PER_SECOND: z.coerce.number().int().min(1).max(1000).default(8)
    .describe('Ceiling per second under DrChrono\'s burst throttle (about 10/s), shared by every replica'),
}).superRefine((e, ctx) => {
  // Half a set of refresh credentials would only fail two days later, when the token expires: refuse it now.
  const refresh = [e.DRCHRONO_REFRESH_TOKEN, e.DRCHRONO_CLIENT_ID, e.DRCHRONO_CLIENT_SECRET]
  if (refresh.some(v => v !== undefined) && refresh.some(v => v === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['DRCHRONO_REFRESH_TOKEN'],
      message: 'set DRCHRONO_REFRESH_TOKEN, DRCHRONO_CLIENT_ID and DRCHRONO_CLIENT_SECRET together, or none of them',
    })
  }
})

export type DrchronoEnv = z.output<typeof drchronoEnv>

/** The settings these variables give, or null when Drchrono is not configured. */
export function drchronoSettingsFromEnv (e: DrchronoEnv): DrchronoSettings | null {
  if (e.DRCHRONO_ACCESS_TOKEN === undefined) return null
  return {
    baseUrl: e.DRCHRONO_BASE_URL,
    accessToken: e.DRCHRONO_ACCESS_TOKEN,
    refreshToken: e.DRCHRONO_REFRESH_TOKEN,
    clientId: e.DRCHRONO_CLIENT_ID,
    clientSecret: e.DRCHRONO_CLIENT_SECRET,
    pageConcurrency: e.DRCHRONO_PAGE_CONCURRENCY,
    speculativePages: e.DRCHRONO_SPECULATIVE_PAGES,
    pollInitialMs: e.DRCHRONO_POLL_INTERVAL_MS,
    requestsPerHour: e.DRCHRONO_REQUESTS_PER_HOUR,
    requestsPerSecond: e.DRCHRONO_REQUESTS_PER_SECOND,
  }
}
