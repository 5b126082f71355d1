/** DrChrono: read jobs over its asynchronous bulk-list endpoints (POST a page, poll its uuid). */
import type { FastifyPluginAsync } from 'fastify'
import { readResources, type SimulatorMountOptions, UpstreamDefinition } from '../types.js'
import { drchronoAdapter, type DrchronoSettings } from './adapter.js'
import { drchronoParams, type DrchronoResource } from './params.js'
import { drchronoSimulator } from './simulator/index.js'
import { drchronoEnv, drchronoSettingsFromEnv, type DrchronoEnv } from './env.js'
import { drchronoFaultTarget } from './simulator/fault-target.js'

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
  resources: readResources(drchronoParams, DESCRIPTIONS, EXAMPLES),
  env: drchronoEnv,
  settingsFromEnv: drchronoSettingsFromEnv,
  simulator: {
    credentials: ['accessToken', 'refreshToken', 'clientId', 'clientSecret'],
    plugin: sandboxSimulator,
    faultTarget: drchronoFaultTarget,
    // The simulator has no hourly budget: a newcomer's tenth job must not wait for the top of the hour.
    sandboxSettings: (baseUrl, credentials) => ({ baseUrl, ...credentials, pageConcurrency: 4, requestsPerHour: 100_000 }),
  },
  createAdapter: (settings, client, services) => drchronoAdapter(settings, client, services),
}
