/**
 * Metriport: the download URLs of a patient's documents. The job starts Metriport's bulk URL generation and
 * parks; Metriport's signed webhook at `POST /webhooks/metriport` finishes it with one record per document.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { SimulatorMountOptions, UpstreamDefinition } from '../types.js'
import { metriportAdapter } from './adapter.js'
import { METRIPORT_RESOURCE, metriportParams } from './params.js'
import {
  DEFAULT_WEBHOOK_TIMEOUT_SECONDS, metriportEnv, metriportSettingsFromEnv,
  type MetriportEnv, type MetriportSettings,
} from './env.js'
import { SANDBOX_PATIENT_IDS, metriportSimulator } from './simulator/index.js'
import { metriportWebhook } from './webhook.js'
import { metriportFaultTarget } from './simulator/fault-target.js'

export type { MetriportSettings, MetriportEnv } from './env.js'

/** The secrets the sandbox simulator checks (the API key) and signs its webhooks with. */
type MetriportSecret = 'apiKey' | 'webhookKey'

/**
 * The sandbox simulator: its webhooks go to this gateway's own /webhooks/metriport, a second after the start,
 * so a newcomer sees the job wait and then complete.
 */
const sandboxSimulator: FastifyPluginAsync<SimulatorMountOptions<MetriportSecret>> = async (app, { gatewayUrl, credentials }) => {
  await metriportSimulator(app, { delayMs: 1000, gatewayUrl, ...credentials })
}

export const metriport: UpstreamDefinition<MetriportEnv, MetriportSettings, MetriportSecret> = {
  name: 'metriport',
  kind: 'read',
  title: 'Metriport',
  secretHeaders: ['x-api-key'],
  description: 'Metriport medical API: download URLs of a patient\'s documents, generated asynchronously by Metriport and ' +
    'delivered by its signed webhook (register <public URL>/webhooks/metriport in Metriport). URLs are valid 10 minutes.',
  resources: {
    [METRIPORT_RESOURCE]: {
      description: 'One record per document of the patient: Metriport\'s document object (id, fileName, description, status, ' +
        'indexed, mimeType, size, type, url, and any field Metriport adds later, unchanged) with `patientId` and `urlExpiresAt` (webhook receipt + 10 minutes) added. ' +
        'A failed generation fails the job with upstream_failed; no webhook within METRIPORT_WEBHOOK_TIMEOUT_SECONDS, with upstream_timeout.',
      params: metriportParams,
      example: { patientId: SANDBOX_PATIENT_IDS[0], metadata: { batch: 'nightly-2024-02-01' } },
    },
  },
  env: metriportEnv,
  settingsFromEnv: metriportSettingsFromEnv,
  simulator: {
    credentials: ['apiKey', 'webhookKey'],
    plugin: sandboxSimulator,
    faultTarget: metriportFaultTarget,
    sandboxSettings: (baseUrl, credentials) => ({ baseUrl, ...credentials, webhookTimeoutSeconds: DEFAULT_WEBHOOK_TIMEOUT_SECONDS }),
  },
  createAdapter: (settings, client) => metriportAdapter(settings, client),
  webhook: metriportWebhook,
}
