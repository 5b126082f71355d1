/** Clinia: write jobs over its asynchronous bulk API (POST a chunk of operations, poll its task for receipts). */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import type { SimulatorMountOptions, UpstreamDefinition } from '../types.js'
import { cliniaAdapter, type CliniaSettings } from './adapter.js'
import { RELATIONSHIP_EXAMPLE, RESOURCE_EXAMPLE, cliniaOperations, cliniaParams, MAX_JOB_OPERATIONS } from './operations.js'
import { cliniaSimulator, SANDBOX_CREDENTIALS } from './simulator/index.js'
import { optionalEnv } from '../../lib/env.js'

// An empty variable (CLINIA_API_KEY=) means unset, as a shell user expects.

const env = z.object({
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

export type CliniaEnv = z.output<typeof env>

/**
 * The sandbox simulator: one PENDING read per task, so a newcomer sees a job run, and the two records the
 * relationships example links, so every Swagger UI example succeeds.
 */
const sandboxSimulator: FastifyPluginAsync<SimulatorMountOptions<'apiKey'>> = async (app, { credentials }) => {
  await cliniaSimulator(app, {
    apiKey: credentials.apiKey,
    pendingPolls: 1,
    seed: [
      { type: 'provider', id: '2eVocVVgjAWYJ74DifXluwVtSYs', data: { name: 'John Doe', practiceNumber: 1020993, specialities: ['Pharmacist'] } },
      { type: 'office', id: '2dMyvjBs8mDQ7VJxjFPtWnFvaxp', data: { name: 'Main Street Pharmacy', city: 'Montreal' } },
    ],
  })
}

const poll = (e: CliniaEnv) => ({
  pollInitialMs: e.CLINIA_POLL_INITIAL_MS,
  pollMaxMs: e.CLINIA_POLL_MAX_MS,
  taskTimeoutMs: e.CLINIA_TASK_TIMEOUT_SECONDS * 1000,
})

export const clinia: UpstreamDefinition<CliniaEnv, CliniaSettings, 'apiKey'> = {
  name: 'clinia',
  kind: 'write',
  title: 'Clinia',
  secretHeaders: ['x-clinia-api-key'],
  description: 'Clinia health data platform, bulk writes: operations are sent in ordered chunks, each an asynchronous bulk task; ' +
    'results hold Clinia\'s receipt for every operation, with its index.',
  resources: {
    resources: {
      description: 'CREATE / UPSERT / DELETE resources (records of the source\'s profiles), processed in the order given.',
      params: cliniaParams,
      example: {},
      payload: { field: 'operations', schema: cliniaOperations.resources, example: RESOURCE_EXAMPLE },
    },
    relationships: {
      description: 'CREATE / UPSERT / DELETE relationships between resources, processed in the order given.',
      params: cliniaParams,
      example: {},
      payload: { field: 'operations', schema: cliniaOperations.relationships, example: RELATIONSHIP_EXAMPLE },
    },
  },
  env,
  settingsFromEnv (e) {
    if (e.CLINIA_API_KEY === undefined || e.CLINIA_BASE_URL === undefined || e.CLINIA_SOURCE_KEY === undefined) return null
    return {
      baseUrl: e.CLINIA_BASE_URL,
      apiKey: e.CLINIA_API_KEY,
      sourceKey: e.CLINIA_SOURCE_KEY,
      maxOperations: e.CLINIA_MAX_OPERATIONS,
      ...poll(e),
    }
  },
  simulator: {
    credentials: ['apiKey'],
    plugin: sandboxSimulator,
    // The source key names the simulator's one source; it grants nothing.
    sandboxSettings: (baseUrl, { apiKey }) => ({ baseUrl, apiKey, sourceKey: SANDBOX_CREDENTIALS.sourceKey, maxOperations: 1000, pollInitialMs: 200, pollMaxMs: 2000 }),
  },
  createAdapter: (settings, client) => cliniaAdapter(settings, client),
}
