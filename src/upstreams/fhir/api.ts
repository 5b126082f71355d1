/**
 * How the adapter talks to a FHIR Bulk Data server: the kick-off, status, cancel and file requests, each with the
 * bearer token when the server needs one (a 401 drops the cached token and tries once more with a new one), and the
 * server's own 429s waited out here rather than in the shared client, because bulk servers put an absolute epoch in
 * Retry-After (waits.ts). Everything else (network errors, 502/503/504, a 500 the server calls transient) is the
 * shared client's retry.
 */
import type { Logger } from 'pino'
import { UpstreamError } from '../../domain/errors.js'
import { sleep } from '../../lib/time.js'
import type { BudgetWait } from '../../lib/budget-windows.js'
import type { UpstreamClient, UpstreamRequest, UpstreamResponse, UpstreamStream } from '../http.js'
import type { SmartAuth } from './auth.js'
import { isTransient } from './outcome.js'
import { retryWait, type Wait, type WaitBounds } from './waits.js'

const UPSTREAM = 'fhir'
/** 429s one request waits out before the job fails with upstream_rate_limited (the SMART server blocks for 5 min). */
export const MAX_THROTTLES = 30
/** The wait after a 429 that names none. */
const THROTTLE_FALLBACK_MS = 5000

/** A job's side of its requests: its signal, its log, and where it shows what it waits for. */
export interface JobIo {
  signal: AbortSignal
  log: Logger
  reportWait (waiter: string, wait: BudgetWait | null): void
  /** Set once a clamped Retry-After has been logged for this job: logged once, not at every poll. */
  clampLogged: boolean
}

/** Statuses the shared client retries: the network's and proxies', and a 500 the server says is transient. */
function retryable (res: UpstreamResponse): boolean {
  if (res.status === 502 || res.status === 503 || res.status === 504) return true
  return isTransient(res.status, res.body)
}

/**
 * One request to send: the shared client's, without what the api adds. `authorize`: it needs the bearer token, which
 * goes only to the origins that may have it ({@link FhirApi.mayCarryToken}); `what` names the URL in the error
 * when it is elsewhere (`a file of the FHIR export`).
 */
export type FhirRequest = Omit<UpstreamRequest, 'upstream' | 'signal' | 'retryable'> & {
  authorize: boolean
  what?: string
  /**
   * When the job's signal aborts, the exchange under way is given this many ms more to answer before it is abandoned
   * (then with the job's reason). For a request whose answer the job needs even when it is stopping (the kick-off's
   * status URL, to DELETE it). One not yet started does not start.
   */
  finishOnAbortMs?: number
}

/** Logs a clamped wait the first time it happens in a job. */
export function noteClamp (j: JobIo, wait: Wait, what: string, asked: string | undefined): void {
  if (wait.clamped === null || j.clampLogged) return
  j.clampLogged = true
  j.log.info({ what, form: wait.form, clamped: wait.clamped, askedLength: asked?.length ?? 0, waitMs: wait.ms }, 'fhir Retry-After outside the allowed waits; clamped')
}

/**
 * A signal that follows `signal` `ms` late: it aborts (with the same reason) that long after `signal` does. `done`
 * releases the listener and the timer once the exchange has ended.
 */
function graceAfterAbort (signal: AbortSignal, ms: number): { signal: AbortSignal, done: () => void } {
  const own = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const start = (): void => { timer = setTimeout(() => { own.abort(signal.reason) }, ms) }
  signal.addEventListener('abort', start, { once: true })
  return {
    signal: own.signal,
    done () {
      signal.removeEventListener('abort', start)
      clearTimeout(timer)
    },
  }
}

/** The FHIR server of one configured adapter. */
export class FhirApi {
  constructor (
    readonly baseUrl: string,
    private readonly client: UpstreamClient,
    private readonly auth: SmartAuth | null,
    readonly bounds: WaitBounds,
    /** Origins besides the FHIR server's and its token endpoint's that may receive the bearer token (FHIR_TOKEN_ORIGINS). */
    private readonly tokenOrigins: readonly string[] = []
  ) {}

  /**
   * Whether the bearer token may go to `url`: the FHIR server's own origin, its token endpoint's (known once a
   * token was fetched), or one listed in FHIR_TOKEN_ORIGINS. Anywhere else (a file host the manifest names, a
   * status URL elsewhere) the token would be handed to a third party.
   */
  mayCarryToken (url: string | URL): boolean {
    const origin = new URL(url).origin
    return origin === new URL(this.baseUrl).origin || origin === this.auth?.tokenOrigin || this.tokenOrigins.includes(origin)
  }

  /** `[base]/<path>`; the base keeps its path. */
  url (path: string): URL {
    return new URL(path, this.baseUrl.replace(/\/*$/, '/'))
  }

  /** A request whose answer is buffered; 401 and 429 are dealt with here, every other status is the caller's. */
  async send (req: FhirRequest, j: JobIo): Promise<UpstreamResponse> {
    const got = await this.#exchange(req, j, false)
    return got as UpstreamResponse
  }

  /** A download: a 2xx stream, or the refusal (buffered) for the caller to map. */
  async open (req: FhirRequest, j: JobIo): Promise<{ stream: UpstreamStream } | { refused: UpstreamResponse }> {
    const got = await this.#exchange(req, j, true)
    return 'text' in got ? { refused: got } : { stream: got }
  }

  async #exchange (req: FhirRequest, j: JobIo, streaming: boolean): Promise<UpstreamResponse | UpstreamStream> {
    let renewed = false
    for (let throttles = 0; ;) {
      const header = req.authorize && this.auth !== null ? await this.auth.header(j.signal) : null
      if (header !== null && !this.mayCarryToken(req.url)) {
        // Never sent there, and never sent without it either: the request would fail, or the server is not the one meant.
        throw new UpstreamError('upstream_url_refused', `${req.what ?? 'a URL the FHIR server sent'} is on another origin than FHIR_BASE_URL and needs the access token, which the gateway sends only to the FHIR server, its token endpoint and the origins in FHIR_TOKEN_ORIGINS`)
      }
      const headers = { ...req.headers, ...(header === null ? {} : { authorization: header }) }
      const { authorize: _, what: __, finishOnAbortMs, ...rest } = req
      j.signal.throwIfAborted()
      const grace = finishOnAbortMs === undefined ? null : graceAfterAbort(j.signal, finishOnAbortMs)
      let res: UpstreamResponse | UpstreamStream
      try {
        res = await this.#once({ ...rest, headers, signal: grace?.signal ?? j.signal, upstream: UPSTREAM, retryable }, streaming)
      } finally {
        grace?.done()
      }
      if ('text' in res) {
        if (res.status === 401 && header !== null && !renewed && this.auth !== null) {
          // The token may have been revoked or expired early: one more try with a new one, then the 401 stands.
          this.auth.invalidate(header)
          renewed = true
          continue
        }
        if (res.status === 429) {
          if (++throttles > MAX_THROTTLES) {
            throw new UpstreamError('upstream_rate_limited', `fhir ${req.method} ${new URL(req.url).pathname} answered 429 ${MAX_THROTTLES} times`, 429)
          }
          const asked = res.headers['retry-after']
          const wait = retryWait(asked, Date.now(), this.bounds, THROTTLE_FALLBACK_MS)
          noteClamp(j, wait, 'rate limit', asked)
          j.reportWait('fhir-throttle', { reason: 'the FHIR server\'s rate limit', until: new Date(Date.now() + wait.ms) })
          await sleep(wait.ms, j.signal)
          j.reportWait('fhir-throttle', null)
          continue
        }
      }
      return res
    }
  }

  /** One exchange through the shared client; a streamed refusal comes back buffered, as OCL's api keeps it. */
  async #once (req: UpstreamRequest, streaming: boolean): Promise<UpstreamResponse | UpstreamStream> {
    if (!streaming) return await this.client.request(req)
    let refused: UpstreamResponse | undefined
    const check = req.retryable as (res: UpstreamResponse) => boolean
    try {
      return await this.client.stream({
        ...req,
        retryable: res => {
          if (check(res)) return true
          refused = res
          return false
        },
      })
    } catch (err) {
      if (refused !== undefined && err instanceof UpstreamError && err.upstreamStatus === refused.status) return refused
      throw err
    }
  }
}
