/**
 * Cliniko's configuration: the API key picks the shard (`...-uk1` → https://api.uk1.cliniko.com/v1; no suffix
 * means au1, as keys made before sharding), every request names the integrator in its User-Agent, and one
 * request budget per key keeps the gateway under Cliniko's 200 requests a minute.
 * Messages name variables and shard suffixes only, never the key.
 */
import { z } from 'zod'
import { optionalEnv } from '../../lib/env.js'

/** Where and how the adapter talks to Cliniko. */
export interface ClinikoSettings {
  /** The API root including the version, e.g. https://api.au1.cliniko.com/v1 */
  baseUrl: string
  apiKey: string
  /** `Name (email)`, as Cliniko asks integrators to identify themselves. */
  userAgent: string
  /** Requests per window allowed for this key (Cliniko: 200 per minute per user). */
  requestsPerMinute: number
  /** The window the limit counts over; 60 000 for Cliniko, shorter only against a fast test simulator. */
  rateWindowMs?: number
  /** Per-attempt timeout; the shared client's default when absent. */
  requestTimeoutMs?: number
}

/** Shards named by Cliniko's documentation; others of the same shape are accepted, as Cliniko adds shards. */
export const KNOWN_SHARDS = ['au1', 'au2', 'au3', 'au4', 'ca1', 'uk1', 'uk2', 'eu1', 'us1'] as const

// Cliniko's own guide: a shard is two letters and one or two digits after the key's last dash.
const SHARD = /^[a-z]{2}\d{1,2}$/i

/** The shard an API key belongs to, or null when its suffix is not a shard (the key is then malformed). */
export function shardOfKey (apiKey: string): string | null {
  const dash = apiKey.lastIndexOf('-')
  if (dash < 0) return 'au1'
  const suffix = apiKey.slice(dash + 1)
  return SHARD.test(suffix) ? suffix.toLowerCase() : null
}

/** The key without its shard suffix: Cliniko accepts a key with or without it. */
export function keyWithoutShard (apiKey: string): string {
  const dash = apiKey.lastIndexOf('-')
  return dash >= 0 && SHARD.test(apiKey.slice(dash + 1)) ? apiKey.slice(0, dash) : apiKey
}

/** The documented API root of a shard. */
export function shardBaseUrl (shard: string): string {
  return `https://api.${shard}.cliniko.com/v1`
}

/** `Name (email)`: something before, an address with an @ inside the final parentheses. */
export const USER_AGENT = /^\S.{0,200}\s\([^\s()@]+@[^\s()@]+\.[^\s()@]+\)$/

export const clinikoEnv = z.object({
  CLINIKO_API_KEY: optionalEnv(z.string().min(1))
    .describe('Cliniko API key (the user name of Basic auth); its suffix such as -uk1 picks the shard. Unset = Cliniko is not configured'),
  CLINIKO_USER_AGENT: optionalEnv(z.string())
    .describe('Required with CLINIKO_API_KEY: "Name (email)", e.g. "Acme bulk gateway (it@acme.example)"; Cliniko may block requests without'),
  CLINIKO_BASE_URL: optionalEnv(z.url({ protocol: /^https?$/ }))
    .describe('API root including /v1; overrides the shard URL derived from the key (e.g. a proxy, or the simulator)'),
  CLINIKO_REQUESTS_PER_MINUTE: z.coerce.number().int().min(1).max(10_000).default(200)
    .describe('Requests per minute the gateway allows itself per API key (Cliniko: 200 per user)'),
}).superRefine((e, ctx) => {
  if (e.CLINIKO_API_KEY === undefined) return
  if (e.CLINIKO_USER_AGENT === undefined) {
    ctx.addIssue({ code: 'custom', path: ['CLINIKO_USER_AGENT'], message: 'required when CLINIKO_API_KEY is set: "Name (email)", e.g. "Acme bulk gateway (it@acme.example)"' })
  } else if (!USER_AGENT.test(e.CLINIKO_USER_AGENT)) {
    ctx.addIssue({ code: 'custom', path: ['CLINIKO_USER_AGENT'], message: 'expected "Name (email)", e.g. "Acme bulk gateway (it@acme.example)"' })
  }
  if (e.CLINIKO_BASE_URL === undefined && shardOfKey(e.CLINIKO_API_KEY) === null) {
    ctx.addIssue({
      code: 'custom',
      path: ['CLINIKO_API_KEY'],
      message: `does not end in a shard such as -au1 or -uk1 (known: ${KNOWN_SHARDS.join(', ')}); check the key, or set CLINIKO_BASE_URL`,
    })
  }
})

export type ClinikoEnv = z.output<typeof clinikoEnv>

/** Settings from the parsed environment, or null when no key is set. */
export function settingsFromEnv (e: ClinikoEnv): ClinikoSettings | null {
  if (e.CLINIKO_API_KEY === undefined || e.CLINIKO_USER_AGENT === undefined) return null
  return {
    baseUrl: e.CLINIKO_BASE_URL ?? shardBaseUrl(shardOfKey(e.CLINIKO_API_KEY) ?? 'au1'),
    apiKey: e.CLINIKO_API_KEY,
    userAgent: e.CLINIKO_USER_AGENT,
    requestsPerMinute: e.CLINIKO_REQUESTS_PER_MINUTE,
  }
}
