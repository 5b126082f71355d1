/** Metriport's environment variables and the settings the adapter, webhook handler and simulator share. */
import { z } from 'zod'
import { optionalEnv } from '../../lib/env.js'

/** Where and how the gateway talks to Metriport, and how it checks Metriport's webhooks. */
export interface MetriportSettings {
  /** e.g. https://api.metriport.com (the sandbox is https://api.sandbox.metriport.com). */
  baseUrl: string
  /** Sent as `x-api-key`. */
  apiKey: string
  /** Signs webhooks (`x-metriport-signature`); set in Metriport's settings next to the webhook URL. */
  webhookKey: string
  /** How long a job waits for its webhook before failing with upstream_timeout. */
  webhookTimeoutSeconds: number
}

/**
 * Keys a simulator started alone (tests, benchmarks) accepts and signs with unless told others. Published: the
 * gateway's sandbox draws its own per process.
 */
export const SANDBOX_CREDENTIALS = {
  apiKey: 'sandbox-metriport-api-key',
  webhookKey: 'sandbox-metriport-webhook-key',
} as const

export const DEFAULT_WEBHOOK_TIMEOUT_SECONDS = 3600

// An empty variable (METRIPORT_API_KEY=) means unset, as a shell user expects.
const optionalSecret = optionalEnv(z.string().min(1))

export const metriportEnv = z.object({
  METRIPORT_BASE_URL: z.url({ protocol: /^https?$/ }).default('https://api.metriport.com')
    .describe('Metriport API host (https://api.sandbox.metriport.com for Metriport\'s own sandbox)'),
  METRIPORT_API_KEY: optionalSecret.describe('Metriport API key (x-api-key); unset = Metriport is not configured'),
  METRIPORT_WEBHOOK_KEY: optionalSecret
    .describe('Metriport webhook key, to verify x-metriport-signature; required with METRIPORT_API_KEY'),
  METRIPORT_WEBHOOK_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(7 * 24 * 3600).default(DEFAULT_WEBHOOK_TIMEOUT_SECONDS)
    .describe('How long a job waits for Metriport\'s webhook before failing with upstream_timeout'),
}).superRefine((e, ctx) => {
  // Without the key every webhook would be refused and every job would time out an hour later: refuse now.
  if (e.METRIPORT_API_KEY !== undefined && e.METRIPORT_WEBHOOK_KEY === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['METRIPORT_WEBHOOK_KEY'],
      message: 'required when METRIPORT_API_KEY is set: Metriport\'s webhooks are verified with it (the webhook key Metriport issues with the webhook URL)',
    })
  }
})

export type MetriportEnv = z.output<typeof metriportEnv>

/** Live settings, or null when no API key is set. */
export function metriportSettingsFromEnv (e: MetriportEnv): MetriportSettings | null {
  if (e.METRIPORT_API_KEY === undefined || e.METRIPORT_WEBHOOK_KEY === undefined) return null
  return {
    baseUrl: e.METRIPORT_BASE_URL,
    apiKey: e.METRIPORT_API_KEY,
    webhookKey: e.METRIPORT_WEBHOOK_KEY,
    webhookTimeoutSeconds: e.METRIPORT_WEBHOOK_TIMEOUT_SECONDS,
  }
}
