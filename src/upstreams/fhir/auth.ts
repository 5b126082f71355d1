/**
 * SMART Backend Services for one adapter (so one per process): the token endpoint (configured, or discovered once
 * from `[base]/.well-known/smart-configuration`), a client assertion JWT signed with the configured key for each
 * token request, and the access token cached until shortly before it expires and shared by every job. One token
 * request at a time: jobs that need a token while one is being fetched wait for it. Tokens and assertions never
 * appear in errors or logs.
 */
import { randomUUID } from 'node:crypto'
import { importJWK, SignJWT, type CryptoKey } from 'jose'
import { untilAborted } from '../../lib/abort.js'
import { UpstreamError } from '../../domain/errors.js'
import type { UpstreamClient, UpstreamResponse } from '../http.js'
import { statusError } from '../status-codes.js'
import type { SigningKey } from './jwk.js'

/** What a SMART client is: its id and key, and what it asks for. */
export interface SmartClient {
  clientId: string
  key: SigningKey
  /** Unset: discovered from the server's SMART configuration. */
  tokenUrl?: string | undefined
  scope: string
}

interface CachedToken { header: string, renewAt: number }

/** Assertions live this long: SMART allows at most five minutes. */
const ASSERTION_SECONDS = 300
/** A token is renewed this long before the server said it expires (or at half its life, if that is later). */
const RENEW_MARGIN_MS = 60_000
/** A token request is its own work, not one job's: it is bounded by this, not by the job that started it. */
const TOKEN_REQUEST_MS = 60_000

const unauthorized = (why: string, status: number | null = null): UpstreamError => new UpstreamError('upstream_unauthorized', why, status)

/** The OAuth error code of a refused token request (`invalid_client`…): a fixed vocabulary, safe to show. */
function oauthError (res: UpstreamResponse): string {
  try {
    const code = (JSON.parse(res.text()) as { error?: unknown }).error
    return typeof code === 'string' && /^[a-z_]{1,40}$/.test(code) ? ` (${code})` : ''
  } catch {
    return ''
  }
}

/** The Authorization header of one SMART client, cached across jobs. */
export class SmartAuth {
  #token: CachedToken | null = null
  #pending: Promise<CachedToken> | null = null
  #tokenUrl: string | null
  #key: Promise<CryptoKey | Uint8Array> | null = null

  constructor (
    private readonly smart: SmartClient,
    private readonly baseUrl: string,
    private readonly client: UpstreamClient,
    private readonly now: () => number = Date.now
  ) {
    this.#tokenUrl = smart.tokenUrl ?? null
  }

  /** `Bearer <token>`, from the cache or a new token request (shared with every job asking at the same time). */
  async header (signal: AbortSignal): Promise<string> {
    const cached = this.#token
    if (cached !== null && this.now() < cached.renewAt) return cached.header
    // A job that has already given up starts nothing.
    signal.throwIfAborted()
    if (this.#pending === null) {
      const pending = this.#fetch().finally(() => { this.#pending = null })
      // Observed here, whoever waits for it: a job that stops waiting (aborted) must not leave its failure unhandled,
      // which would end the process. The jobs still waiting get the rejection from `pending` itself.
      pending.catch(() => {})
      this.#pending = pending
    }
    return (await untilAborted(this.#pending, signal)).header
  }

  /** The token endpoint's origin, once configured or discovered: it may see the token it issued. */
  get tokenOrigin (): string | null {
    return this.#tokenUrl === null ? null : new URL(this.#tokenUrl).origin
  }

  /** The server refused `header` (a 401): it is dropped, so the next request fetches a new token. */
  invalidate (header: string): void {
    if (this.#token?.header === header) this.#token = null
  }

  async #fetch (): Promise<CachedToken> {
    const signal = AbortSignal.timeout(TOKEN_REQUEST_MS)
    const tokenUrl = this.#tokenUrl ??= await this.#discover(signal)
    const now = this.now()
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: this.smart.key.alg, kid: this.smart.key.kid, typ: 'JWT' })
      .setIssuer(this.smart.clientId)
      .setSubject(this.smart.clientId)
      .setAudience(tokenUrl)
      .setExpirationTime(Math.floor(now / 1000) + ASSERTION_SECONDS)
      .setJti(randomUUID())
      .sign(await (this.#key ??= importJWK(this.smart.key.jwk as never, this.smart.key.alg)))
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      scope: this.smart.scope,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    }).toString()
    const res = await this.client.request({
      method: 'POST',
      url: tokenUrl,
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body,
      signal,
      upstream: 'fhir',
      // The endpoint was configured or discovered on the FHIR server: judged like any URL the server supplies.
      suppliedBy: { baseUrl: this.smart.tokenUrl ?? this.baseUrl },
    })
    if (res.status === 400 || res.status === 401 || res.status === 403) {
      throw unauthorized(`the FHIR token endpoint refused the client (${res.status}${oauthError(res)}); check FHIR_CLIENT_ID, FHIR_PRIVATE_KEY and the key registered with the server`, res.status)
    }
    // Not a refusal of the client but the endpoint failing or missing: the status's own code (a 404 is a wrong URL).
    if (res.status !== 200) throw statusError(res.status, `the FHIR token endpoint answered ${res.status}`)
    let answer: { access_token?: unknown, expires_in?: unknown, token_type?: unknown }
    try {
      answer = JSON.parse(res.text()) as typeof answer
    } catch {
      throw new UpstreamError('invalid_upstream_response', 'the FHIR token endpoint answered 200 with a body that is not JSON', 200)
    }
    if (typeof answer.access_token !== 'string' || answer.access_token === '') {
      throw new UpstreamError('invalid_upstream_response', 'the FHIR token endpoint answered 200 without an access_token', 200)
    }
    const seconds = Number(answer.expires_in)
    const lifeMs = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : ASSERTION_SECONDS * 1000
    const token = { header: `Bearer ${answer.access_token}`, renewAt: now + Math.max(lifeMs / 2, lifeMs - RENEW_MARGIN_MS) }
    this.#token = token
    return token
  }

  /** The token endpoint named by `[base]/.well-known/smart-configuration`. */
  async #discover (signal: AbortSignal): Promise<string> {
    const url = new URL('.well-known/smart-configuration', this.baseUrl.replace(/\/*$/, '/'))
    const res = await this.client.request({ method: 'GET', url, headers: { accept: 'application/json' }, signal, upstream: 'fhir' })
    if (res.status !== 200) {
      throw new UpstreamError(res.status === 401 || res.status === 403 ? 'upstream_unauthorized' : 'invalid_upstream_response',
        `the FHIR server's SMART configuration answered ${res.status}; set FHIR_TOKEN_URL`, res.status)
    }
    let endpoint: unknown
    try {
      endpoint = (JSON.parse(res.text()) as { token_endpoint?: unknown }).token_endpoint
    } catch {
      endpoint = undefined
    }
    if (typeof endpoint !== 'string' || !/^https?:\/\//.test(endpoint)) {
      throw new UpstreamError('invalid_upstream_response', 'the FHIR server\'s SMART configuration names no token_endpoint; set FHIR_TOKEN_URL', res.status)
    }
    return endpoint
  }
}
