/** DrChrono: read jobs over its asynchronous bulk-list endpoints (POST a page, poll its uuid). */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import type { SimulatorMountOptions, UpstreamDefinition } from '../types.js'
import { drchronoAdapter, type DrchronoSettings } from './adapter.js'
import { drchronoParams, type DrchronoResource } from './params.js'
import { drchronoSimulator } from './simulator/index.js'
import { optionalEnv } from '../../lib/env.js'

// An empty variable (DRCHRONO_REFRESH_TOKEN=) means unset, as a shell user expects.
const optionalSecret = optionalEnv(z.string().min(1))

const env = z.object({
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

export type DrchronoEnv = z.output<typeof env>

const DESCRIPTIONS: Record<DrchronoResource, string> = {
  appointments: 'Appointments (ids are strings), in scheduled order unless order_by=updated_at; archived ones only with show_archived.',
  patients: 'Patient demographics.',
  line_items: 'Billing line items (procedure codes and their charges).',
  transactions: 'Payments and adjustments posted against line items.',
  prescription_messages: 'Electronic prescription (eRx) messages.',
  eligibility_checks: 'Insurance eligibility checks.',
  clinical_notes: 'Clinical notes, one per charted appointment.',
  clinical_note_field_values: 'Values charted in clinical note fields; page_size may go up to 20000.',
}

const EXAMPLES: Partial<Record<DrchronoResource, Record<string, unknown>>> = {
  appointments: { since: '2024-02-01' },
  patients: { since: '2024-02-01', order_by: 'updated_at' },
}

/** The secrets the sandbox simulator checks, drawn per process by the gateway. */
type DrchronoSecret = 'accessToken' | 'refreshToken' | 'clientId' | 'clientSecret'

/**
 * The sandbox simulator: small enough to finish in seconds, slow enough (one "In progress" poll per page)
 * for a newcomer to watch progress rise.
 */
const sandboxSimulator: FastifyPluginAsync<SimulatorMountOptions<DrchronoSecret>> = async (app, { credentials }) => {
  // Slow enough that a newcomer watches progress rise over a few seconds, as with the real DrChrono.
  // DrChrono's burst throttle too (about 10 a second); its hourly budget is left out, so a demo never waits an hour.
  await drchronoSimulator(app, { inProgressPolls: 2, generationMs: 1500, recordCount: { appointments: 5000 }, maxRequestsPerSecond: 10, ...credentials })
}

export const drchrono: UpstreamDefinition<DrchronoEnv, DrchronoSettings, DrchronoSecret> = {
  name: 'drchrono',
  kind: 'read',
  title: 'DrChrono',
  secretHeaders: [],
  description: 'DrChrono EHR bulk lists: each page is generated asynchronously by DrChrono (POST, then poll its uuid).',
  resources: Object.fromEntries(Object.entries(drchronoParams).map(([resource, params]) => [resource, {
    description: DESCRIPTIONS[resource as DrchronoResource],
    params,
    example: EXAMPLES[resource as DrchronoResource] ?? {},
  }])),
  env,
  settingsFromEnv (e) {
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
  },
  simulator: {
    credentials: ['accessToken', 'refreshToken', 'clientId', 'clientSecret'],
    plugin: sandboxSimulator,
    // The simulator has no hourly budget: a newcomer's tenth job must not wait for the top of the hour.
    sandboxSettings: (baseUrl, credentials) => ({ baseUrl, ...credentials, pageConcurrency: 4, requestsPerHour: 100_000 }),
  },
  createAdapter: (settings, client, services) => drchronoAdapter(settings, client, services),
}
