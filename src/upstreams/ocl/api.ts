/**
 * How the adapter talks to OCL: its URLs, the `Authorization: Token` header (only ever to OCL's own host),
 * the wait after a 429 without Retry-After (throttle.ts), and the mapping of OCL's `{"detail": "..."}` answers
 * to stable error codes.
 */
import type { UpstreamClient, UpstreamResponse, UpstreamStream } from '../http.js'
import { statusError } from '../status-codes.js'
import { UpstreamError } from '../../domain/errors.js'
import type { OclTarget } from './params.js'
import { oclThrottleWait } from './throttle.js'

const UPSTREAM = 'ocl'
/** Statuses the shared client retries (its default set): 429 is OCL's throttle, the rest transient. */
const TRANSIENT = new Set([429, 500, 502, 503, 504])

/** A response or a 2xx stream: see {@link OclApi.open}. */
export type Opened = { stream: UpstreamStream } | { response: UpstreamResponse }

/** What a refusal means, in the gateway's words: OCL's `detail` is never quoted (a job's message shows no upstream body). */
const HINTS: Record<number, string> = {
  401: '; check OCL_TOKEN',
  403: '; the token may not read this source',
  404: '; the owner, source or version does not exist there, or is not visible to the token',
}

/** An answer the protocol has no use for, as a stable error. */
export function oclError (res: UpstreamResponse, what: string): UpstreamError {
  const ok = res.status >= 200 && res.status < 300
  return statusError(res.status, ok ? `${what}: OCL answered ${res.status} unexpectedly` : `${what}: OCL answered ${res.status}${HINTS[res.status] ?? ''}`)
}

/** A response the protocol cannot use: a body or header that is not what OCL documents. */
export function invalidResponse (what: string, why: string, status: number | null = null): UpstreamError {
  return new UpstreamError('invalid_upstream_response', `${what}: ${why}`, status)
}

/** Where OCL lives and who the gateway is there. */
export interface OclConnection {
  /** e.g. https://api.openconceptlab.org; a path prefix is kept. */
  baseUrl: string
  /** Unset: anonymous access, which OCL allows for public sources. */
  token?: string | undefined
  /** The clock a 429's wait is reckoned by (see throttle.ts); Date.now unless a test pins it. */
  now?: () => number
}

/** OCL's API for one configured server: URLs, authenticated requests, and token-free downloads. */
export class OclApi {
  readonly #base: URL
  readonly #headers: Record<string, string>
  /** A 429 without Retry-After waits as its X-LimitRemaining-* headers imply, if they do. */
  readonly #throttleWait: (res: UpstreamResponse) => number | undefined

  constructor (connection: OclConnection, readonly client: UpstreamClient) {
    const now = connection.now ?? Date.now
    this.#throttleWait = res => oclThrottleWait(res.headers, now())
    this.#base = new URL(connection.baseUrl.replace(/\/*$/, '/'))
    this.#headers = { accept: 'application/json' }
    if (connection.token !== undefined) this.#headers.authorization = `Token ${connection.token}`
  }

  /** `{base}/{ownerType}/{owner}/sources/{source}/{...segments}/`, each segment encoded. */
  sourceUrl (t: OclTarget, ...segments: string[]): URL {
    const path = [t.ownerType, t.owner, 'sources', t.source, ...segments].map(encodeURIComponent).join('/')
    return new URL(`${path}/`, this.#base)
  }

  /** A GET to OCL, with the token; retried on 429/5xx by the shared client. */
  get (url: URL, signal: AbortSignal): Promise<UpstreamResponse> {
    return this.client.request({ method: 'GET', url, headers: this.#headers, signal, upstream: UPSTREAM, retryAfterMs: this.#throttleWait })
  }

  /** A POST with no body (OCL's export trigger). */
  post (url: URL, signal: AbortSignal): Promise<UpstreamResponse> {
    return this.client.request({ method: 'POST', url, headers: this.#headers, signal, upstream: UPSTREAM, retryAfterMs: this.#throttleWait })
  }

  /**
   * A GET whose 2xx body may be a large file (old OCL servers answer the export GET with the zip itself),
   * while its 3xx/4xx are small answers whose headers matter (a 302's Location). The shared client's
   * stream() hands back only 2xx; every other final answer goes through the `retryable` hook first, with its
   * headers and (small) body, so it is kept from there rather than lost in the thrown error.
   */
  async open (url: URL, signal: AbortSignal): Promise<Opened> {
    let refused: UpstreamResponse | undefined
    const retryable = (res: UpstreamResponse): boolean => {
      if (TRANSIENT.has(res.status)) return true
      refused = res
      return false
    }
    try {
      return {
        stream: await this.client.stream({
          method: 'GET', url, headers: this.#headers, signal, upstream: UPSTREAM, retryable, retryAfterMs: this.#throttleWait,
        }),
      }
    } catch (err) {
      if (refused !== undefined && err instanceof UpstreamError && err.upstreamStatus === refused.status) return { response: refused }
      throw err
    }
  }

  /**
   * Downloads a signed export URL: without the OCL token (it may be another host, and a storage service
   * refuses a request carrying two auth mechanisms) and without logging it (the URL is the credential).
   * OCL chose the URL (a redirect, an `exportURL` header): the URL guard decides whether it may be followed.
   */
  download (url: URL, signal: AbortSignal): Promise<UpstreamStream> {
    return this.client.stream({ method: 'GET', url, signal, upstream: UPSTREAM, suppliedBy: { baseUrl: this.#base } })
  }
}
