/** OCL (Open Concept Lab): source version exports and incremental concept/mapping lists. */
import type { FastifyPluginAsync } from 'fastify'
import { readResources, type SimulatorMountOptions, UpstreamDefinition } from '../types.js'
import { oclAdapter, type OclSettings } from './adapter.js'
import { oclParams, type OclResource } from './params.js'
import { oclSimulator } from './simulator/index.js'
import { oclEnv, oclSettingsFromEnv, type OclEnv } from './env.js'
import { oclFaultTarget } from './simulator/fault-target.js'

const DESCRIPTIONS: Record<OclResource, string> = {
  export: 'A source version\'s concepts and mappings, from OCL\'s export file (version "latest" = the newest released); records in the file\'s order, concepts then mappings. The job\'s upstreamInfo carries the export\'s lastUpdated, from which a changes job can continue.',
  changes: 'Concepts, then mappings, of a source updated at or after updatedSince, from OCL\'s list endpoints.',
}

const EXAMPLES: Record<OclResource, Record<string, unknown>> = {
  export: { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', version: 'latest' },
  changes: { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', updatedSince: '2024-06-01T00:00:00Z', includeRetired: true },
}

/** The sandbox: exports take one 208 poll, short enough to watch, long enough to show the protocol. */
const sandboxSimulator: FastifyPluginAsync<SimulatorMountOptions<'token'>> = async (app, { credentials }) => {
  await oclSimulator(app, { exportPolls: 1, token: credentials.token })
}

/** OCL's entry in the upstream registry. */
export const ocl: UpstreamDefinition<OclEnv, OclSettings, 'token'> = {
  name: 'ocl',
  kind: 'read',
  title: 'OCL',
  secretHeaders: [],
  description: 'Open Concept Lab terminology server: source version exports (a zip of export.json) and incremental concept and mapping lists.',
  resources: readResources(oclParams, DESCRIPTIONS, EXAMPLES),
  env: oclEnv,
  settingsFromEnv: oclSettingsFromEnv,
  simulator: {
    credentials: ['token'],
    plugin: sandboxSimulator,
    faultTarget: oclFaultTarget,
    sandboxSettings: (baseUrl, { token }) => ({ baseUrl, token, pollInitialMs: 500, pollMaxMs: 2000, maxPolls: 30 }),
  },
  createAdapter: (settings, client) => oclAdapter(settings, client),
}
