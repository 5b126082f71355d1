/** ledger: a made-up upstream of offset-paged entries, registered only by this test's registry (../registry.ts). */
import type { FastifyPluginAsync } from 'fastify'
import type { SimulatorMountOptions, UpstreamDefinition } from '../../../../src/upstreams/types.js'
import { ledgerAdapter } from './adapter.js'
import { ledgerEnv, ledgerSettingsFromEnv, type LedgerEnv, type LedgerSettings } from './env.js'
import { ledgerParams } from './params.js'
import { ledgerSimulator } from './simulator/index.js'
import { ledgerFaultTarget } from './simulator/fault-target.js'

const sandboxSimulator: FastifyPluginAsync<SimulatorMountOptions<'key'>> = async (app, { credentials }) => {
  await ledgerSimulator(app, { seed: 1, count: 240, key: credentials.key })
}

export const ledger: UpstreamDefinition<LedgerEnv, LedgerSettings, 'key'> = {
  name: 'ledger',
  kind: 'read',
  title: 'Ledger',
  secretHeaders: ['X-Ledger-Key'],
  description: 'A made-up ledger: entries read page by page by offset.',
  resources: {
    entries: { description: 'Ledger entries, oldest first.', params: ledgerParams.entries, example: { since: '2024-03-01', limit: 25 } },
  },
  env: ledgerEnv,
  settingsFromEnv: ledgerSettingsFromEnv,
  simulator: {
    credentials: ['key'],
    plugin: sandboxSimulator,
    sandboxSettings: (baseUrl, credentials) => ({ baseUrl, key: credentials.key }),
    faultTarget: ledgerFaultTarget,
  },
  createAdapter: (settings, client) => ledgerAdapter(settings, client),
}
