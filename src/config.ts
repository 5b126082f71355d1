/**
 * The gateway's configuration: one zod schema over the environment, parsed once at boot.
 * Each upstream declares its own variables (`UpstreamDefinition.env`); they are parsed here with the core ones
 * so that a bad value anywhere stops start-up with one message naming every wrong variable.
 */
import { z } from 'zod'
import { TokenKey, decodeTokenKey } from './db/credential-crypto.js'
import { defaultHost, exposureProblems } from './config-exposure.js'
import { registry as builtIn, variablesOf, type AnyUpstream, type Registry } from './upstreams/registry.js'
import {
  DEFAULT_DOWNLOAD_DEADLINE_MS, DEFAULT_MAX_BYTES_IN_FLIGHT, DEFAULT_MAX_RECORD_BYTES, DEFAULT_REQUEST_DEADLINE_MS, type ResponseLimitOptions,
} from './upstreams/response-limits.js'
import { parseAllowedOrigins } from './upstreams/url-guard.js'
import { ConfigError } from './domain/errors.js'
import { parseCallbackSecrets, parseRetrySchedule } from './lib/callback-secrets.js'
import { optionalEnv } from './lib/env.js'

const seconds = (fallback: number) => z.coerce.number().int().positive().default(fallback)

/** `name:key,name:key` → key → client name. Names identify the owner of jobs; keys never leave the process. */
const apiKeys = z.string().optional().transform((value, ctx) => {
  if (value === undefined || value.trim() === '') return null
  const keys = new Map<string, string>()
  for (const pair of value.split(',').map(s => s.trim()).filter(Boolean)) {
    const at = pair.indexOf(':')
    const name = pair.slice(0, at)
    const key = pair.slice(at + 1)
    if (at <= 0 || key.length < 8 || !/^[\w.-]+$/.test(name)) {
      ctx.addIssue({ code: 'custom', message: 'expected name:key pairs separated by commas (name: letters, digits, _ . -; key: 8 characters or more)' })
      return z.NEVER
    }
    if (keys.has(key)) {
      ctx.addIssue({ code: 'custom', message: `the key of client "${name}" is used twice` })
      return z.NEVER
    }
    keys.set(key, name)
  }
  return keys
})

/**
 * Fastify's trustProxy: true/false or the proxies' addresses/CIDRs. Not a hop count: Fastify 5 trusts nothing
 * then (it cannot tell who sent the headers), which would silently ignore every X-Forwarded-* header.
 */
const trustProxy = z.string().optional().transform((value, ctx): boolean | string => {
  if (value === undefined || value === '' || value === 'false') return false
  if (value === 'true') return true
  if (/^\d+$/.test(value.trim())) {
    ctx.addIssue({ code: 'custom', message: 'a hop count is not supported: give the proxy\'s addresses or CIDRs (e.g. 10.0.0.0/8,127.0.0.1), or true' })
    return z.NEVER
  }
  return value
})

/**
 * UPSTREAMS: the upstreams this gateway exposes, comma-separated. Unset (null here): in production without sandbox
 * the configured ones, elsewhere every registered one (see {@link loadConfig}), so that registering a new upstream
 * never breaks a production deployment that does not use it.
 */
const exposedUpstreams = z.string().optional().transform((value, ctx): string[] | null => {
  if (value === undefined || value.trim() === '') return null
  const names = [...new Set(value.split(',').map(s => s.trim()).filter(Boolean))]
  if (names.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'no upstream given: list upstream names separated by commas, or leave it unset' })
    return z.NEVER
  }
  return names
})

/** A TOKEN_ENCRYPTION_KEY: 32 bytes in base64, held as a {@link TokenKey} (whose secret never prints). */
const tokenKey = optionalEnv(z.string()).transform((value, ctx) => {
  if (value === undefined) return undefined
  const decoded = decodeTokenKey(value)
  if ('problem' in decoded) {
    ctx.addIssue({ code: 'custom', message: decoded.problem })
    return z.NEVER
  }
  return new TokenKey(decoded.key)
})

const count = (fallback: number) => z.coerce.number().int().min(0).default(fallback)

/** A size in bytes, at least 1 KiB: a smaller limit is a typo, not a setting. */
const bytes = (fallback: number) => z.coerce.number().int().min(1024).max(Number.MAX_SAFE_INTEGER).default(fallback)

/** UPSTREAM_MAX_RESPONSE_BYTES: `upstream:bytes` pairs overriding the per-upstream limits of response-limits.ts. */
const responseBytesByUpstream = z.string().optional().transform((value, ctx) => {
  const limits: Record<string, number> = {}
  for (const pair of (value ?? '').split(',').map(s => s.trim()).filter(Boolean)) {
    const [name = '', size = ''] = pair.split(':').map(s => s.trim())
    if (name === '' || !/^\d+$/.test(size) || Number(size) < 1024) {
      ctx.addIssue({ code: 'custom', message: `expected upstream:bytes pairs separated by commas (e.g. drchrono:134217728; at least 1024 bytes), got "${pair}"` })
      return z.NEVER
    }
    limits[name] = Number(size)
  }
  return limits
})

/** UPSTREAM_ALLOWED_ORIGINS: `scheme://host:port,...` that URLs an upstream supplies may reach (see url-guard.ts). */
const allowedOrigins = z.string().optional().transform((value, ctx) => {
  const parsed = parseAllowedOrigins(value)
  if ('problem' in parsed) {
    ctx.addIssue({ code: 'custom', message: parsed.problem })
    return z.NEVER
  }
  return parsed.origins
})

/** CALLBACK_SECRETS: `name:whsec_…` pairs, a signing secret per API client, two during a rotation (lib/callback-secrets.ts). */
const callbackSecrets = z.string().optional().transform((value, ctx) => {
  const parsed = parseCallbackSecrets(value)
  if ('problem' in parsed) {
    ctx.addIssue({ code: 'custom', message: parsed.problem })
    return z.NEVER
  }
  return parsed.secrets
})

/** Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h after each failed attempt. */
export const DEFAULT_CALLBACK_RETRY_SCHEDULE = '5,300,1800,7200,18000,36000,50400,72000,86400'

const retrySchedule = optionalEnv(z.string()).transform((value, ctx) => {
  const parsed = parseRetrySchedule(value ?? DEFAULT_CALLBACK_RETRY_SCHEDULE)
  if ('problem' in parsed) {
    ctx.addIssue({ code: 'custom', message: parsed.problem })
    return z.NEVER
  }
  return parsed.delays
})

export const coreEnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  // Unset: 0.0.0.0 with GATEWAY_API_KEYS, 127.0.0.1 without (config-exposure.ts).
  HOST: z.string().min(1).optional(),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// URL').optional(),
  DATA_DIR: z.string().min(1).default('./.data'),
  RESULT_TTL_SECONDS: seconds(3600),
  GATEWAY_API_KEYS: apiKeys,
  TRUST_PROXY: trustProxy,
  PUBLIC_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  SANDBOX: z.stringbool().optional(),
  ALLOW_OPEN_ACCESS: z.stringbool().default(false),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  WORKER_CONCURRENCY: z.coerce.number().int().min(0).max(64).default(4),
  LEASE_SECONDS: seconds(30),
  WORKER_POLL_SECONDS: seconds(5),
  JOB_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(5),
  SWEEP_INTERVAL_SECONDS: seconds(30),
  SHUTDOWN_TIMEOUT_SECONDS: seconds(10),
  UPSTREAMS: exposedUpstreams,
  RATE_LIMIT_MAX: count(1200),
  RATE_LIMIT_ANONYMOUS_MAX: count(300),
  RATE_LIMIT_WINDOW_SECONDS: seconds(60),
  // Queued plus running jobs one client may have at once; 0 = no limit (job-insert.ts).
  MAX_ACTIVE_JOBS_PER_CLIENT: count(20),
  // Refused webhook deliveries (bad signature, too large) per source address and window; 0 = off (webhooks.ts).
  WEBHOOK_FAILURE_LIMIT: count(10),
  WEBHOOK_FAILURE_WINDOW_SECONDS: seconds(600),
  REQUEST_TIMEOUT_SECONDS: seconds(60),
  UPSTREAM_MAX_RESPONSE_BYTES: responseBytesByUpstream,
  UPSTREAM_MAX_RECORD_BYTES: bytes(DEFAULT_MAX_RECORD_BYTES),
  UPSTREAM_MAX_BYTES_IN_FLIGHT: bytes(DEFAULT_MAX_BYTES_IN_FLIGHT),
  UPSTREAM_REQUEST_DEADLINE_SECONDS: z.coerce.number().positive().default(DEFAULT_REQUEST_DEADLINE_MS / 1000),
  UPSTREAM_DOWNLOAD_DEADLINE_SECONDS: z.coerce.number().positive().default(DEFAULT_DOWNLOAD_DEADLINE_MS / 1000),
  TOKEN_ENCRYPTION_KEY: tokenKey,
  TOKEN_ENCRYPTION_KEY_PREVIOUS: tokenKey,
  UPSTREAM_ALLOWED_ORIGINS: allowedOrigins,
  JOB_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  /** Test-only (a soak test's shortened history): overrides JOB_RETENTION_DAYS; refused in production. */
  JOB_RETENTION_SECONDS: z.coerce.number().int().positive().optional(),
  IDEMPOTENCY_KEY_TTL_HOURS: z.coerce.number().int().min(1).max(24 * 365).default(24),
  // Result reads (src/api/results.ts): a JSON page and an NDJSON batch end at their record count or these bytes.
  RESULT_PAGE_MAX_BYTES: bytes(4 * 1024 * 1024),
  RESULT_BATCH_MAX_BYTES: bytes(1024 * 1024),
  RESULT_STREAM_STALL_SECONDS: z.coerce.number().positive().default(60),
  MAX_RESULT_STREAMS_PER_CLIENT: z.coerce.number().int().min(1).max(10_000).default(4),
  // Completion callbacks (engine/callbacks.ts): where they may go, what signs them, when they are retried.
  CALLBACK_ALLOWED_ORIGINS: allowedOrigins,
  CALLBACK_SECRETS: callbackSecrets,
  CALLBACK_RETRY_SCHEDULE_SECONDS: retrySchedule,
  CALLBACK_TIMEOUT_SECONDS: z.coerce.number().positive().max(300).default(10),
})

export type CoreConfig = z.output<typeof coreEnvSchema>

/** The parsed configuration. `upstreamEnv` holds each upstream's own parsed variables, by upstream name. */
export interface Config extends Omit<CoreConfig, 'SANDBOX' | 'HOST' | 'UPSTREAMS'> {
  SANDBOX: boolean
  HOST: string
  /** The upstreams exposed: UPSTREAMS, or by default the configured ones (production) or every registered one. */
  UPSTREAMS: string[]
  upstreamEnv: Record<string, Record<string, unknown>>
  /** The upstreams this gateway knows (registry.ts): the app, its routes and its logger read them from here. */
  registry: Registry
}

/**
 * Whether an upstream's settings carry a refresh token: its tokens rotate, so the gateway stores them (encrypted
 * with TOKEN_ENCRYPTION_KEY). Read from the settings' shape, the one place every upstream puts its credentials.
 */
function rotatesCredentials (upstream: AnyUpstream, env: Record<string, unknown>): boolean {
  const settings = upstream.settingsFromEnv(env) as { refreshToken?: unknown } | null
  return typeof settings?.refreshToken === 'string' && settings.refreshToken !== ''
}

function describe (issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map(issue => `${issue.path.join('.') || '(environment)'}: ${issue.message}`)
}

/** Upstream names in UPSTREAMS and UPSTREAM_MAX_RESPONSE_BYTES that the registry does not know. */
function unknownUpstreams (core: CoreConfig, registry: Registry): string[] {
  const expected = `expected some of: ${registry.names.join(', ')}`
  const problems: string[] = []
  const exposed = (core.UPSTREAMS ?? []).filter(name => registry.find(name) === undefined)
  if (exposed.length > 0) problems.push(`UPSTREAMS: unknown upstream ${exposed.join(', ')}; ${expected}`)
  const limited = Object.keys(core.UPSTREAM_MAX_RESPONSE_BYTES).filter(name => registry.find(name) === undefined)
  if (limited.length > 0) problems.push(`UPSTREAM_MAX_RESPONSE_BYTES: unknown upstream ${limited.join(', ')}; ${expected}`)
  return problems
}

/** CALLBACK_SECRETS naming a client GATEWAY_API_KEYS does not know; retries outlasting the jobs they report. */
function callbackProblems (core: CoreConfig): string[] {
  const problems: string[] = []
  const clients = core.GATEWAY_API_KEYS === null ? ['anonymous'] : [...new Set(core.GATEWAY_API_KEYS.values())]
  const unknown = [...core.CALLBACK_SECRETS.keys()].filter(name => !clients.includes(name))
  if (unknown.length > 0) {
    problems.push(`CALLBACK_SECRETS: unknown client ${unknown.join(', ')}; the names are those of GATEWAY_API_KEYS (${clients.join(', ')})`)
  }
  const span = core.CALLBACK_RETRY_SCHEDULE_SECONDS.reduce((sum, delay) => sum + delay, 0)
  if (core.JOB_RETENTION_SECONDS === undefined && span > core.JOB_RETENTION_DAYS * 86_400) {
    problems.push(`CALLBACK_RETRY_SCHEDULE_SECONDS: the retries span ${span} s, longer than JOB_RETENTION_DAYS keeps the jobs they report`)
  }
  return problems
}

/**
 * Parses the environment (process.env by default) for the upstreams of `registry` (the built-in one by default).
 * Throws {@link ConfigError} naming every bad variable.
 */
export function loadConfig (env: Record<string, string | undefined> = process.env, registry: Registry = builtIn): Config {
  const upstreams = registry.upstreams
  const problems: string[] = []
  const core = coreEnvSchema.safeParse(env)
  if (!core.success) problems.push(...describe(core.error.issues))
  else problems.push(...unknownUpstreams(core.data, registry))
  const upstreamEnv: Record<string, Record<string, unknown>> = {}
  for (const upstream of upstreams) {
    const parsed = upstream.env.safeParse(env)
    if (parsed.success) upstreamEnv[upstream.name] = parsed.data
    else problems.push(...describe(parsed.error.issues))
  }
  if (core.success && core.data.JOB_RETENTION_SECONDS !== undefined && core.data.NODE_ENV === 'production') {
    problems.push('JOB_RETENTION_SECONDS: a test-only knob, refused when NODE_ENV=production; set JOB_RETENTION_DAYS')
  }
  if (core.success && core.data.TOKEN_ENCRYPTION_KEY_PREVIOUS !== undefined && core.data.TOKEN_ENCRYPTION_KEY === undefined) {
    problems.push('TOKEN_ENCRYPTION_KEY_PREVIOUS: set only beside TOKEN_ENCRYPTION_KEY, while stored tokens move from the previous key to it')
  }
  if (core.success) problems.push(...exposureProblems(core.data), ...callbackProblems(core.data))
  if (!core.success || problems.length > 0) {
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`)
  }
  const sandbox = core.data.SANDBOX ?? core.data.NODE_ENV !== 'production'
  const configured = upstreams.filter(u => u.settingsFromEnv(upstreamEnv[u.name] ?? {}) !== null).map(u => u.name)
  const config: Config = {
    ...core.data,
    HOST: core.data.HOST ?? defaultHost(core.data.GATEWAY_API_KEYS),
    SANDBOX: sandbox,
    // Without UPSTREAMS, a production gateway without simulators serves what it was configured for; elsewhere every
    // registered upstream is served (an unconfigured one fails its jobs with upstream_not_configured).
    UPSTREAMS: core.data.UPSTREAMS ?? (core.data.NODE_ENV === 'production' && !sandbox ? configured : upstreams.map(u => u.name)),
    upstreamEnv,
    registry,
  }
  if (config.NODE_ENV === 'production') {
    const rotating = upstreams.filter(u => config.UPSTREAMS.includes(u.name) && rotatesCredentials(u, upstreamEnv[u.name] ?? {}))
    if (config.TOKEN_ENCRYPTION_KEY === undefined && rotating.length > 0) {
      const variables = rotating.flatMap(u => variablesOf(u).filter(v => v.endsWith('_REFRESH_TOKEN')))
      throw new ConfigError('Invalid configuration:\n  TOKEN_ENCRYPTION_KEY: required when NODE_ENV=production and refresh credentials are configured ' +
        `(${variables.join(', ')}): the gateway stores the rotated tokens encrypted with it. ` +
        'Set it to 32 random bytes in base64 (e.g. `openssl rand -base64 32`), the same on every replica.')
    }
    if (!config.SANDBOX && config.UPSTREAMS.length === 0) {
      throw new ConfigError('Invalid configuration:\n  no upstream is configured: set the variables of the upstreams you use ' +
        `(${upstreams.map(u => `${u.name}: ${variablesOf(u).join(', ')}`).join('; ')}); the configured ones are served, or those UPSTREAMS lists. ` +
        'The built-in simulators (SANDBOX=true) run only outside production.')
    }
    if (!config.SANDBOX) {
      const missing = upstreams.filter(u => config.UPSTREAMS.includes(u.name) && u.settingsFromEnv(upstreamEnv[u.name] ?? {}) === null)
      if (missing.length > 0) {
        throw new ConfigError('Invalid configuration:\n  ' + missing.map(u => `${u.name}: exposed but not configured (set ${variablesOf(u).join(', ')})`).join('\n  ') +
          '\n  In production every exposed upstream needs its configuration: list the ones you use in UPSTREAMS (now ' +
          `${config.UPSTREAMS.join(',')}), or leave it unset to serve the configured ones. The built-in simulators (SANDBOX=true) run only outside production.`)
      }
    }
  }
  return config
}

/** How long a finished job's row is kept: JOB_RETENTION_SECONDS where a test set it, else JOB_RETENTION_DAYS. */
export function jobRetentionSeconds (config: Pick<CoreConfig, 'JOB_RETENTION_DAYS' | 'JOB_RETENTION_SECONDS'>): number {
  return config.JOB_RETENTION_SECONDS ?? config.JOB_RETENTION_DAYS * 86_400
}

/** The limits on upstream answers this configuration sets (UPSTREAM_MAX_*, UPSTREAM_*_DEADLINE_SECONDS). */
export function responseLimitOptions (config: CoreConfig): ResponseLimitOptions {
  return {
    responseBytes: config.UPSTREAM_MAX_RESPONSE_BYTES,
    maxRecordBytes: config.UPSTREAM_MAX_RECORD_BYTES,
    maxBytesInFlight: config.UPSTREAM_MAX_BYTES_IN_FLIGHT,
    requestDeadlineMs: Math.round(config.UPSTREAM_REQUEST_DEADLINE_SECONDS * 1000),
    downloadDeadlineMs: Math.round(config.UPSTREAM_DOWNLOAD_DEADLINE_SECONDS * 1000),
  }
}
