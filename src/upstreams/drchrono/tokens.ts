/**
 * DrChrono's token pair as the gateway keeps it: parsed from the token endpoint's answer, stored (encrypted, by the
 * credential store) as plain JSON, and renewed shortly before it expires. Pure functions; auth.ts does the I/O.
 */
import { createHash } from 'node:crypto'
import type { UpstreamResponse } from '../http.js'

/** An access token and the refresh token that replaces it, with when to replace it. */
export interface TokenPair {
  accessToken: string
  refreshToken: string
  /** Epoch ms at which DrChrono stops accepting the access token; null when unknown (configured tokens). */
  expiresAt: number | null
  /** Epoch ms from which the pair is refreshed before it is used; null when the expiry is unknown. */
  refreshAt: number | null
}

const FIVE_MINUTES = 5 * 60_000

/**
 * When to refresh a token that lives `lifetimeMs`: at 90% of its life or five minutes before its end, whichever
 * is earlier, but never before half of it has passed (a token of a few seconds would otherwise be refreshed at
 * every request). 48 h → after 43.2 h; 10 min → after 5 min; 4 s → after 2 s.
 */
export function refreshDelayMs (lifetimeMs: number): number {
  const margin = Math.max(0.1 * lifetimeMs, Math.min(FIVE_MINUTES, 0.5 * lifetimeMs))
  return Math.max(0, lifetimeMs - margin)
}

/** Whether the pair should be refreshed before its next use. */
export function isDue (pair: TokenPair, now: number): boolean {
  return pair.refreshAt !== null && now >= pair.refreshAt
}

/**
 * The pair in a 200 answer of `/o/token/`, or null when it has no access token. DrChrono rotates the refresh token
 * on every use; an answer without one keeps the old (OAuth allows it).
 */
export function pairFromAnswer (res: UpstreamResponse, previousRefreshToken: string, now: number): TokenPair | null {
  let body: { access_token?: unknown, refresh_token?: unknown, expires_in?: unknown }
  try {
    body = JSON.parse(res.text()) as typeof body
  } catch {
    return null
  }
  if (typeof body?.access_token !== 'string' || body.access_token === '') return null
  const refreshToken = typeof body.refresh_token === 'string' && body.refresh_token !== '' ? body.refresh_token : previousRefreshToken
  const seconds = typeof body.expires_in === 'number' || typeof body.expires_in === 'string' ? Number(body.expires_in) : NaN
  if (!Number.isFinite(seconds) || seconds <= 0) return { accessToken: body.access_token, refreshToken, expiresAt: null, refreshAt: null }
  const lifetimeMs = seconds * 1000
  return { accessToken: body.access_token, refreshToken, expiresAt: now + lifetimeMs, refreshAt: now + refreshDelayMs(lifetimeMs) }
}

/** The pair as the credential store keeps it (JSON). */
export function storedValue (pair: TokenPair): Record<string, unknown> {
  return { accessToken: pair.accessToken, refreshToken: pair.refreshToken, expiresAt: pair.expiresAt, refreshAt: pair.refreshAt }
}

/** The pair back from the store, or null when the value is not one (then the configured pair is used). */
export function pairFromStored (value: Record<string, unknown>): TokenPair | null {
  const { accessToken, refreshToken, expiresAt, refreshAt } = value
  const time = (v: unknown): number | null | undefined => (v === null ? null : typeof v === 'number' && Number.isFinite(v) ? v : undefined)
  const e = time(expiresAt)
  const r = time(refreshAt)
  if (typeof accessToken !== 'string' || accessToken === '' || typeof refreshToken !== 'string' || refreshToken === '') return null
  if (e === undefined || r === undefined) return null
  return { accessToken, refreshToken, expiresAt: e, refreshAt: r }
}

/**
 * A digest naming the configured values (host, client, both tokens): when it changes, an operator configured a
 * fresh pair and it wins over the stored one. Never the values themselves; the store digests it once more with
 * its key before it reaches the database.
 */
export function seedOf (values: { baseUrl: string, clientId: string, accessToken: string, refreshToken: string }): string {
  const text = JSON.stringify([values.baseUrl.replace(/\/+$/, ''), values.clientId, values.accessToken, values.refreshToken])
  return createHash('sha256').update('drchrono configured tokens\u0000').update(text).digest('hex')
}

/** The OAuth error code of a refused token request (e.g. invalid_grant): a fixed vocabulary, safe to show. */
export function oauthError (res: UpstreamResponse): string | null {
  try {
    const code = (JSON.parse(res.text()) as { error?: unknown }).error
    return typeof code === 'string' && /^[a-z_]{1,40}$/.test(code) ? code : null
  } catch {
    return null
  }
}
