/** Clinia: write jobs over its asynchronous bulk API (POST a chunk of operations, poll its task for receipts). */
import type { FastifyPluginAsync } from 'fastify'
import type { SimulatorMountOptions, UpstreamDefinition } from '../types.js'
import { cliniaAdapter, type CliniaSettings } from './adapter.js'
import { RELATIONSHIP_EXAMPLE, RESOURCE_EXAMPLE, cliniaOperations, cliniaParams } from './params.js'
import { cliniaSimulator, SANDBOX_CREDENTIALS } from './simulator/index.js'
import { cliniaEnv, cliniaSettingsFromEnv, type CliniaEnv } from './env.js'
import { cliniaFaultTarget } from './simulator/fault-target.js'

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
  env: cliniaEnv,
  settingsFromEnv: cliniaSettingsFromEnv,
  simulator: {
    credentials: ['apiKey'],
    plugin: sandboxSimulator,
    faultTarget: cliniaFaultTarget,
    // The source key names the simulator's one source; it grants nothing.
    sandboxSettings: (baseUrl, { apiKey }) => ({
      baseUrl,
      apiKey,
      sourceKey: SANDBOX_CREDENTIALS.sourceKey,
      maxOperations: 1000,
      pollInitialMs: 200,
      pollMaxMs: 2000,
    }),
  },
  createAdapter: (settings, client) => cliniaAdapter(settings, client),
}
