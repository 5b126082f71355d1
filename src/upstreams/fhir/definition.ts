/** FHIR Bulk Data Access (`$export`): system, Patient and Group exports from any server that implements the IG. */
import type { FastifyPluginAsync } from 'fastify'
import { readResources, type SimulatorMountOptions, UpstreamDefinition } from '../types.js'
import { fhirAdapter, type FhirSettings } from './adapter.js'
import { DEFAULT_SCOPE, fhirEnv, fhirSettingsFromEnv, type FhirEnv } from './env.js'
import { parseSigningKey } from './jwk.js'
import { fhirParams, type FhirResource } from './params.js'
import { fhirSimulator } from './simulator/index.js'
import { fhirFaultTarget } from './simulator/fault-target.js'
import { sandboxKeyPair } from './simulator/sandbox-key.js'

const DESCRIPTIONS: Record<FhirResource, string> = {
  system: 'Every resource the server exports (`[base]/$export`). Records: the resources of the manifest\'s `output` files in manifest order, lines in file order; then its `deleted` and `error` entries, each wrapped as `{"manifestArray","type","resource"}`.',
  patient: 'All patients\' compartments (`[base]/Patient/$export`); records as for `system`.',
  group: 'The compartments of one Group\'s members (`[base]/Group/{groupId}/$export`); an unknown group exports nothing. Records as for `system`.',
}

const EXAMPLES: Record<FhirResource, Record<string, unknown>> = {
  system: { _type: 'Patient,Observation' },
  patient: { _type: 'Patient,Condition', _since: '2024-01-01T00:00:00Z' },
  group: { groupId: 'BlueCrossBlueShield', _type: 'Patient' },
}

/** The secrets drawn for the sandbox: a SMART client id, and the seed of its key pair (sandbox-key.ts). */
type FhirSecret = 'clientId' | 'keySeed'

/**
 * The sandbox: a secure server whose one SMART client is drawn for this process (so the adapter runs the whole
 * Backend Services flow), two "in progress" polls a second apart, small files.
 */
const sandboxSimulator: FastifyPluginAsync<SimulatorMountOptions<FhirSecret>> = async (app, { credentials }) => {
  const clients = { [credentials.clientId]: sandboxKeyPair(credentials.keySeed).publicJwk }
  await fhirSimulator(app, { pollsBeforeReady: 2, retryAfterSeconds: 1, pageSize: 25, secure: true, clients })
}

/** The adapter's side of the sandbox client: the same drawn secrets, the private half of the key. */
function sandboxAuth (credentials: Readonly<Record<FhirSecret, string>>): FhirSettings['auth'] {
  const key = parseSigningKey(JSON.stringify(sandboxKeyPair(credentials.keySeed).privateJwk))
  if (typeof key === 'string') throw new Error(`the sandbox's FHIR key ${key}`)
  return { clientId: credentials.clientId, key, tokenUrl: undefined, scope: DEFAULT_SCOPE }
}

/** The FHIR Bulk Data upstream's entry in the registry. */
export const fhir: UpstreamDefinition<FhirEnv, FhirSettings, FhirSecret> = {
  name: 'fhir',
  kind: 'read',
  title: 'FHIR Bulk Data',
  secretHeaders: [],
  description: 'A FHIR server\'s Bulk Data `$export` (HL7 Bulk Data Access IG v2), with SMART Backend Services authorization when configured.',
  resources: readResources(fhirParams, DESCRIPTIONS, EXAMPLES),
  env: fhirEnv,
  settingsFromEnv: fhirSettingsFromEnv,
  simulator: {
    credentials: ['clientId', 'keySeed'],
    plugin: sandboxSimulator,
    sandboxSettings: (baseUrl, credentials) => ({
      baseUrl, auth: sandboxAuth(credentials), minWaitMs: 500, maxWaitMs: 2000, maxRestarts: 3, exportTimeoutMs: 600_000,
    }),
    faultTarget: fhirFaultTarget,
  },
  createAdapter: (settings, client) => fhirAdapter(settings, client),
}
