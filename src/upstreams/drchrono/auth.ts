/**
 * DrChrono's OAuth2 bearer tokens for one adapter instance: every request carries the current access token;
 * a 401 triggers one refresh at `/o/token/`, shared by every request (and job) that hit the same 401, and the
 * request is sent once more with the new token. Tokens never appear in errors or logs.
 */
import type { UpstreamClient, UpstreamRequest, UpstreamResponse } from '../http.js'
import { UpstreamError } from '../types.js'

export interface DrchronoCredentials {
  baseUrl: string
  accessToken: string
  refreshToken?: string
  clientId?: string
  clientSecret?: string
  /** Per-attempt timeout for every request; the client's default when absent. */
  requestTimeoutMs?: number
}

export type DrchronoRequest = Omit<UpstreamRequest, 'upstream'>

const unauthorized = (why: string): UpstreamError => new UpstreamError('upstream_unauthorized', why, 401)

/** Rejects with `signal.reason` as soon as the signal aborts, without cancelling the shared `promise`. */
function untilAborted<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

export class DrchronoAuth {
  readonly #client: UpstreamClient
  readonly #creds: DrchronoCredentials
  #accessToken: string
  #refreshToken: string | undefined
  #refreshing: Promise<void> | null = null

  constructor (creds: DrchronoCredentials, client: UpstreamClient) {
    this.#creds = creds
    this.#client = client
    this.#accessToken = creds.accessToken
    this.#refreshToken = creds.refreshToken
  }

  /** Sends an authenticated request; a 401 is answered by one shared token refresh and one more try. */
  async send (req: DrchronoRequest): Promise<UpstreamResponse> {
    const used = this.#accessToken
    const res = await this.#send(req, used)
    if (res.status !== 401) return res
    await this.#renew(used, req.signal)
    const again = await this.#send(req, this.#accessToken)
    if (again.status === 401) throw unauthorized('DrChrono refused the freshly refreshed access token (401)')
    return again
  }

  #send (req: DrchronoRequest, token: string): Promise<UpstreamResponse> {
    return this.#client.request({
      timeoutMs: this.#creds.requestTimeoutMs,
      ...req,
      upstream: 'drchrono',
      headers: { ...req.headers, accept: 'application/json', authorization: `Bearer ${token}` },
    })
  }

  async #renew (used: string, signal: AbortSignal): Promise<void> {
    // Another request already replaced the token this one was refused with: just use the new one.
    if (this.#accessToken !== used) return
    const { clientId, clientSecret } = this.#creds
    if (this.#refreshToken === undefined || clientId === undefined || clientSecret === undefined) {
      throw unauthorized('DrChrono refused the access token (401) and no refresh token and client credentials are configured')
    }
    this.#refreshing ??= this.#refresh(this.#refreshToken, clientId, clientSecret).finally(() => { this.#refreshing = null })
    await untilAborted(this.#refreshing, signal)
  }

  async #refresh (refreshToken: string, clientId: string, clientSecret: string): Promise<void> {
    const body = new URLSearchParams({
      grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, client_secret: clientSecret,
    }).toString()
    const res = await this.#client.request({
      method: 'POST',
      url: new URL('o/token/', `${this.#creds.baseUrl.replace(/\/+$/, '')}/`),
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body,
      // Not tied to the job that noticed the 401: other jobs may be waiting for this same refresh.
      signal: new AbortController().signal,
      timeoutMs: this.#creds.requestTimeoutMs,
      upstream: 'drchrono',
      // Refresh tokens rotate: a refresh that reached DrChrono but whose answer was lost must not be replayed
      // with the now-dead refresh token.
      idempotent: false,
    })
    const answer = res.status === 200 ? parseTokenAnswer(res) : null
    if (answer === null) {
      throw unauthorized(`DrChrono refused the token refresh (${res.status}${oauthError(res)})`)
    }
    this.#accessToken = answer.access_token
    if (typeof answer.refresh_token === 'string' && answer.refresh_token !== '') this.#refreshToken = answer.refresh_token
  }
}

function parseTokenAnswer (res: UpstreamResponse): { access_token: string, refresh_token?: unknown } | null {
  try {
    const body = JSON.parse(res.text()) as { access_token?: unknown, refresh_token?: unknown }
    return typeof body.access_token === 'string' && body.access_token !== '' ? { ...body, access_token: body.access_token } : null
  } catch {
    return null
  }
}

/** The OAuth error code (e.g. invalid_grant): a fixed vocabulary, safe to show. */
function oauthError (res: UpstreamResponse): string {
  try {
    const code = (JSON.parse(res.text()) as { error?: unknown }).error
    return typeof code === 'string' && /^[a-z_]{1,40}$/.test(code) ? `: ${code}` : ''
  } catch {
    return ''
  }
}
