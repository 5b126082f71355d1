/**
 * Fail-closed rules over the parsed configuration: who may reach the gateway, and what a request may steer.
 * Without client keys it listens on loopback only, unless ALLOW_OPEN_ACCESS says open access elsewhere is meant.
 * In production: keys are required and long, the proxies are named (TRUST_PROXY=true would believe any client's
 * X-Forwarded-* headers), PUBLIC_BASE_URL is set (no Host header steers Location or the documentation's server),
 * and the simulators are off (a stand-in upstream has no place where patient data flows).
 */
import { BlockList, isIP } from 'node:net'

/** The shortest client key accepted in production: 32 characters, e.g. `openssl rand -hex 24` gives 48. */
export const MIN_PRODUCTION_KEY_LENGTH = 32

/** The parsed variables the rules read. */
export interface ExposureSettings {
  NODE_ENV: 'development' | 'production' | 'test'
  /** Unset: the default, which follows from GATEWAY_API_KEYS (see {@link defaultHost}). */
  HOST?: string | undefined
  /** Key → client name; null when unset (open access). */
  GATEWAY_API_KEYS: ReadonlyMap<string, string> | null
  ALLOW_OPEN_ACCESS: boolean
  TRUST_PROXY: boolean | string
  PUBLIC_BASE_URL?: string | undefined
  SANDBOX?: boolean | undefined
}

const loopback = new BlockList()
loopback.addSubnet('127.0.0.0', 8, 'ipv4')
loopback.addAddress('::1', 'ipv6')

/** Whether a listen address is reachable from this machine only. */
export function isLoopbackHost (host: string): boolean {
  if (host === 'localhost') return true
  const family = isIP(host)
  return family !== 0 && loopback.check(host, family === 4 ? 'ipv4' : 'ipv6')
}

/** HOST when unset: every interface when clients need a key, loopback when anyone may call. */
export function defaultHost (keys: ExposureSettings['GATEWAY_API_KEYS']): string {
  return keys === null ? '127.0.0.1' : '0.0.0.0'
}

/** What the rules refuse, one line per variable; empty when the configuration is acceptable. */
export function exposureProblems (c: ExposureSettings): string[] {
  const problems: string[] = []
  const production = c.NODE_ENV === 'production'
  if (c.GATEWAY_API_KEYS === null) {
    if (production) problems.push('GATEWAY_API_KEYS: required when NODE_ENV=production (open access is for development only)')
    else if (c.HOST !== undefined && !isLoopbackHost(c.HOST) && !c.ALLOW_OPEN_ACCESS) {
      problems.push(`HOST: ${c.HOST} is not a loopback address and GATEWAY_API_KEYS is not set, so every caller there would have open access. ` +
        'Set GATEWAY_API_KEYS, or ALLOW_OPEN_ACCESS=true if open access on that address is meant (development only)')
    }
  }
  if (!production) return problems
  const short = [...c.GATEWAY_API_KEYS ?? []].filter(([key]) => key.length < MIN_PRODUCTION_KEY_LENGTH).map(([, name]) => `"${name}"`)
  if (short.length > 0) {
    problems.push(`GATEWAY_API_KEYS: the key of client ${short.join(', ')} is shorter than ${MIN_PRODUCTION_KEY_LENGTH} characters, ` +
      'refused when NODE_ENV=production (make one with `openssl rand -hex 24`)')
  }
  if (c.TRUST_PROXY === true) {
    problems.push('TRUST_PROXY: true is refused when NODE_ENV=production (any client could then set X-Forwarded-* headers): ' +
      'give the proxies\' addresses or CIDRs, e.g. 10.0.0.0/8,127.0.0.1')
  }
  if (c.PUBLIC_BASE_URL === undefined) {
    problems.push('PUBLIC_BASE_URL: required when NODE_ENV=production, the external URL clients use (e.g. https://gateway.example.org): ' +
      'Location headers and the documentation\'s server are built from it, never from a request\'s Host header')
  }
  if (c.SANDBOX === true) {
    problems.push('SANDBOX: true is refused when NODE_ENV=production: the built-in simulators are for development and demos ' +
      '(run those with NODE_ENV=development)')
  }
  return problems
}
