/**
 * The one HTTP client every adapter uses: keep-alive pool, per-attempt timeouts, retries with backoff and
 * Retry-After, per-key request budgets, and the job's AbortSignal honoured everywhere.
 *
 * Errors never carry request headers (tokens), query strings (filters such as patient names) or bodies
 * (patient data): only upstream, method, origin + path, status and error codes.
 */
import type { Readable } from 'node:stream'
import { Agent, request as undiciRequest, type Dispatcher } from 'undici'
import { backoffDelay, sleep } from '../lib/time.js'
import { BufferPool } from '../lib/buffer-pool.js'
import type { UpstreamEvent } from '../contract/upstream-events.js'
import { parseRetryAfter } from './retry-after.js'
import type { BudgetSpec, BudgetStore, BudgetTaker } from './request-budget.js'
import { UpstreamError } from '../domain/errors.js'
import { attemptSignal, responseLimits, type ResponseLimitOptions, type ResponseLimits } from './response-limits.js'
import { tooLarge } from '../contract/record-limits.js'
import { UrlGuard, type UrlGuardOptions } from './url-guard.js'
import { errorCode } from '../lib/values.js'

/**
 * Buffers that response bodies of up to 2 MB are read into, for the callers that give them back: DrChrono's pages
 * (1000 records of a few hundred bytes each), a dozen in flight at most.
 */
const bodies = new BufferPool(16, 2 * 1024 * 1024)

/** A buffered upstream response. Header names are lower-case; repeated headers are joined with ', '. */
export interface UpstreamResponse {
  status: number
  headers: Record<string, string>
  body: Buffer
  /** The body as UTF-8 text, decoded on the first call only. */
  text (): string
  /** Throws `invalid_upstream_response` when the body is not JSON. */
  json<T = unknown> (): T
  /**
   * Gives the body's buffer back for a later response (lib/buffer-pool.ts says why). Call it only once nothing reads
   * `body`, nor any view of it, again: a page's records once the page is saved. Optional: a body never released is
   * collected as usual. Calling it again does nothing.
   */
  release (): void
}

/** A 2xx response whose body the caller must consume (or destroy). */
export interface UpstreamStream {
  status: number
  headers: Record<string, string>
  body: Readable
}

/** One logical request; it may take several attempts. */
export interface UpstreamRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  url: string | URL
  headers?: Record<string, string>
  body?: string | Buffer
  signal: AbortSignal
  /** Per attempt; see {@link UpstreamClientOptions.timeoutMs}. */
  timeoutMs?: number
  maxAttempts?: number
  /** Whether a response is retried; default: 429, 500, 502, 503, 504. */
  retryable?: (res: UpstreamResponse) => boolean
  /** A wait for a 429 when the response has no usable Retry-After (e.g. DrChrono's "Expected available in N seconds."). */
  retryAfterMs?: (res: UpstreamResponse) => number | undefined
  /** Name of the upstream for log lines and errors, e.g. 'drchrono'. */
  upstream: string
  /**
   * Taken before every attempt, retries included. A 429 pauses the whole budget (every job, every replica) for
   * as long as the upstream asked (Retry-After, X-RateLimit-Reset, the adapter's hint), or for the backoff when
   * it did not say.
   */
  budget?: { store: BudgetStore, spec: BudgetSpec, taker?: BudgetTaker | undefined }
  /**
   * Whether sending the request twice is harmless (default true). When false (e.g. a Clinia bulk write), a
   * network failure is retried only when the request surely never left (connection refused, DNS, connect
   * timeout); a reset after sending fails at once, since the upstream may have acted on it.
   * Redirects are never followed: a 3xx is returned to the caller.
   */
  idempotent?: boolean
  /**
   * Set when `url` was handed over by the upstream (a redirect, a download link, a next link) rather than built
   * from its configured base URL, which is given here: the URL guard (url-guard.ts) then decides where it may go.
   */
  suppliedBy?: { baseUrl: string | URL }
  /**
   * A lower limit than the upstream's for this answer: what the caller has room for (e.g. a DrChrono page's
   * share of the job's UPSTREAM_MAX_BYTES_IN_FLIGHT).
   */
  maxResponseBytes?: number
}

export interface UpstreamClientOptions {
  /**
   * Per attempt: the wait for response headers, and the longest silence while reading the body (undici
   * checks these about once a second, so they fire up to ~1 s late). Default 30 000.
   */
  timeoutMs?: number
  maxAttempts?: number
  /**
   * 429s are the upstream pacing us, not failing: they have their own, larger allowance (default 20) and do
   * not use up maxAttempts, which counts network errors and 5xx.
   */
  maxRateLimitRetries?: number
  baseDelayMs?: number
  maxDelayMs?: number
  /**
   * A longer server-requested wait fails with upstream_rate_limited rather than sleeping for ages, unless the
   * request has a budget: the budget is then paused for the whole wait and the job shows what it waits for.
   */
  maxRetryAfterMs?: number
  /** The buffered-answer limit of every upstream that `limits.responseBytes` does not name (tests). */
  maxBodyBytes?: number
  /** Size and time limits on answers (response-limits.ts); the defaults fit the real upstreams. */
  limits?: ResponseLimitOptions
  random?: () => number
  onEvent?: (e: UpstreamEvent) => void
  /** Where URLs an upstream supplies may lead (UPSTREAM_ALLOWED_ORIGINS, https only in production). */
  urlGuard?: UrlGuardOptions
}

const DEFAULT_RETRYABLE = new Set([429, 500, 502, 503, 504])
/** UPSTREAM_DEADLINE: an attempt's headers and body took longer than its total deadline (see ResponseLimits). */
const DEADLINE = 'UPSTREAM_DEADLINE'
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', DEADLINE])
/** Failures before the request could have reached the upstream: always safe to retry. */
const UNSENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT'])
const NETWORK_CODES = new Set([...TIMEOUT_CODES, ...UNSENT_CODES, 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED',
  'UND_ERR_SOCKET', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'])

function flattenHeaders (raw: Dispatcher.ResponseData['headers']): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(raw)) {
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value
  }
  return out
}

/** X-RateLimit-Reset as epoch ms. Small values are read as seconds from now: a guard against a vendor
 *  sending a delta rather than the documented UNIX time. */
function rateLimitReset (value: string | undefined, now: number): number | undefined {
  if (value === undefined || !/^\s*\d+(\.\d+)?\s*$/.test(value)) return undefined
  const n = Number(value)
  return n < 1e9 ? now + n * 1000 : n * 1000
}

/** The longest window of a budget, at least a minute. */
function longestWindowMs (spec: BudgetSpec): number {
  return Math.max(60_000, ...spec.windows.map(w => w.windowMs))
}

/** An adapter's wait hint; one that throws (say, json() on an HTML 429 page) must not fail the request. */
function hint (retryAfterMs: UpstreamRequest['retryAfterMs'], res: UpstreamResponse): number | undefined {
  try {
    const ms = retryAfterMs?.(res)
    return ms !== undefined && Number.isFinite(ms) && ms >= 0 ? ms : undefined
  } catch {
    return undefined
  }
}

/** The shared upstream HTTP client. One per process; closed on shutdown. */
export class UpstreamClient {
  readonly #agent: Agent
  /** Carries supplied URLs that are not allowed by name: its connections resolve through the URL guard. */
  readonly #guardedAgent: Agent
  readonly #guard: UrlGuard
  readonly #o: Required<Omit<UpstreamClientOptions, 'onEvent' | 'urlGuard' | 'maxBodyBytes' | 'limits'>> & Pick<UpstreamClientOptions, 'onEvent'>
  /** What answers may be: adapters read the per-job ones (record size, bytes in flight) from here. */
  readonly limits: ResponseLimits

  constructor (o: UpstreamClientOptions = {}) {
    this.#o = {
      timeoutMs: o.timeoutMs ?? 30_000,
      maxAttempts: o.maxAttempts ?? 6,
      maxRateLimitRetries: o.maxRateLimitRetries ?? 20,
      baseDelayMs: o.baseDelayMs ?? 250,
      maxDelayMs: o.maxDelayMs ?? 30_000,
      maxRetryAfterMs: o.maxRetryAfterMs ?? 120_000,
      random: o.random ?? Math.random,
      onEvent: o.onEvent,
    }
    this.limits = responseLimits({ defaultResponseBytes: o.maxBodyBytes, ...o.limits })
    this.#agent = new Agent({ keepAliveTimeout: 10_000, connect: { timeout: Math.min(this.#o.timeoutMs, 10_000) } })
    this.#guard = new UrlGuard(o.urlGuard)
    this.#guardedAgent = new Agent({ keepAliveTimeout: 10_000, connect: this.#guard.connector({ timeout: Math.min(this.#o.timeoutMs, 10_000) }) })
  }

  /** Sends the request with retries; resolves with the first response that is not retried, whatever its status. */
  async request (opts: UpstreamRequest): Promise<UpstreamResponse> {
    return await this.#run(opts, false) as UpstreamResponse
  }

  /**
   * Like request(), but resolves a 2xx with its body unread (large downloads): the caller consumes it, and
   * no size limit applies, but the download deadline does: past it the body errors with `upstream_timeout`.
   * A stall while reading it errors the stream with undici's
   * UND_ERR_BODY_TIMEOUT, and an abort with the signal's reason. A non-2xx response that is not retried
   * fails with `upstream_failed` carrying its status, for the adapter to map.
   */
  async stream (opts: UpstreamRequest): Promise<UpstreamStream> {
    return await this.#run(opts, true) as UpstreamStream
  }

  /** Waits for requests in flight, then closes the pool's sockets. A no-op once closed or destroyed. */
  async close (): Promise<void> {
    if (this.#agent.closed || this.#agent.destroyed) return
    await Promise.all([this.#agent.close(), this.#guardedAgent.close()])
  }

  get destroyed (): boolean {
    return this.#agent.destroyed
  }

  /**
   * Drops every socket at once, in flight or idle; requests still running fail. For shutdown, once no job
   * runs: an idle socket to this very gateway (sandbox mode) would otherwise hold the server's close up.
   */
  async destroy (): Promise<void> {
    if (this.#agent.destroyed) return
    await Promise.all([this.#agent.destroy(), this.#guardedAgent.destroy()])
  }

  async #run (opts: UpstreamRequest, streaming: boolean): Promise<UpstreamResponse | UpstreamStream> {
    const { signal, method, upstream, budget } = opts
    const url = new URL(opts.url)
    const safeUrl = url.origin + url.pathname
    // Job error messages name no host (it may be internal) and no path the upstream chose (a signed link's).
    const where = `${upstream} ${method} ${opts.suppliedBy === undefined ? url.pathname : '(a link the upstream sent)'}`
    const dispatcher = opts.suppliedBy !== undefined && this.#guard.check(url, opts.suppliedBy.baseUrl) === 'public' ? this.#guardedAgent : this.#agent
    const maxAttempts = opts.maxAttempts ?? this.#o.maxAttempts
    const timeoutMs = opts.timeoutMs ?? this.#o.timeoutMs
    const retryable = opts.retryable ?? ((res: UpstreamResponse) => DEFAULT_RETRYABLE.has(res.status))
    const base = { upstream, method, url: safeUrl }

    let failures = 0 // network errors and retryable non-429 responses
    let throttles = 0 // 429s
    for (let attempt = 1; ; attempt++) {
      signal.throwIfAborted()
      if (budget) await budget.store.take(budget.spec, budget.taker, signal)
      const started = performance.now()
      let res: UpstreamResponse
      // One deadline for the whole attempt, body included: timeoutMs alone restarts on every byte, so a body
      // trickling a byte every 29 s would otherwise hold the job forever.
      const deadlineMs = streaming ? this.limits.downloadDeadlineMs : this.limits.requestDeadlineMs
      const deadline = attemptSignal(signal, deadlineMs, () =>
        new UpstreamError('upstream_timeout', `${where}: no complete answer within ${Math.ceil(deadlineMs / 1000)} s`))
      let handedOver = false
      try {
        const raw = await undiciRequest(url, {
          dispatcher,
          method,
          headers: opts.headers,
          body: opts.body,
          signal: deadline.signal,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        })
        const headers = flattenHeaders(raw.headers)
        this.#emit({ type: 'response', ...base, attempt, status: raw.statusCode, durationMs: performance.now() - started })
        if (streaming && raw.statusCode >= 200 && raw.statusCode < 300) {
          // The caller reads the body: the deadline runs on until it ends, then erroring it with upstream_timeout.
          handedOver = true
          raw.body.once('close', () => deadline.done())
          return { status: raw.statusCode, headers, body: raw.body }
        }
        const { body, pooled } = await this.#readBody(raw, headers, where, upstream, opts.maxResponseBytes)
        res = this.#response(raw.statusCode, headers, body, where, pooled)
      } catch (err) {
        // The caller's cancel is not an upstream failure: hand back its reason untouched.
        if (signal.aborted) throw signal.reason
        if (err instanceof UpstreamError && !deadline.expired) throw err
        const code = deadline.expired ? DEADLINE : errorCode(err)
        if (code?.startsWith('HPE_')) throw new UpstreamError('invalid_upstream_response', `${where}: unparsable HTTP response (${code})`)
        if (code === undefined || !NETWORK_CODES.has(code)) throw err // a bug or a closed client, not the network
        this.#emit({ type: 'network_error', ...base, attempt, code, durationMs: performance.now() - started })
        const failure = TIMEOUT_CODES.has(code) ? 'upstream_timeout' : 'upstream_unavailable'
        failures++
        if (failures >= maxAttempts || (opts.idempotent === false && !UNSENT_CODES.has(code))) {
          throw new UpstreamError(failure, `${where} failed after ${attempt} attempt(s): ${code}`, null)
        }
        await this.#pause(this.#backoff(failures), { ...base, attempt, reason: code }, signal)
        continue
      } finally {
        if (!handedOver) deadline.done()
      }

      if (!retryable(res)) {
        if (!streaming) return res
        throw new UpstreamError('upstream_failed', `${where} answered ${res.status}`, res.status)
      }
      const limited = res.status === 429
      const failure = limited ? 'upstream_rate_limited' : 'upstream_unavailable'
      const now = Date.now()
      const reset = limited ? rateLimitReset(res.headers['x-ratelimit-reset'], now) : undefined
      if (limited) throttles++
      else failures++
      const asked = parseRetryAfter(res.headers['retry-after'], now) ??
        (limited ? hint(opts.retryAfterMs, res) ?? (reset === undefined ? undefined : Math.max(0, reset - now)) : undefined)
      const delay = asked ?? this.#backoff(limited ? throttles : failures)
      // The upstream counts the key, not this request: every job and replica using it waits as long. The pause
      // is then the wait (the next take() sleeps through it), however long: a job never fails for waiting on
      // its budget, it shows what it waits for instead.
      const paused = limited && budget !== undefined
      // Never longer than the budget's longest window (an hour for DrChrono, a minute for Cliniko): a bogus
      // Retry-After of days must not park every job of every replica; a limit that still holds answers 429 again.
      if (paused) await budget.store.pause(budget.spec, Math.min(Math.max(now + delay, reset ?? 0), now + longestWindowMs(budget.spec)))
      if (limited ? throttles > this.#o.maxRateLimitRetries : failures >= maxAttempts) {
        throw new UpstreamError(failure, `${where} answered ${res.status} after ${attempt} attempt(s)`, res.status)
      }
      if (!paused && asked !== undefined && asked > this.#o.maxRetryAfterMs) {
        throw new UpstreamError(failure, `${where} answered ${res.status} and asked to wait ${Math.ceil(asked / 1000)} s`, res.status)
      }
      this.#emit({ type: 'retry', ...base, attempt, delayMs: delay, reason: String(res.status) })
      if (!paused) await sleep(delay, signal)
    }
  }

  #backoff (attempt: number): number {
    return backoffDelay(attempt, { baseMs: this.#o.baseDelayMs, maxMs: this.#o.maxDelayMs }, this.#o.random)
  }

  async #pause (delayMs: number, e: Omit<Extract<UpstreamEvent, { type: 'retry' }>, 'type' | 'delayMs'>, signal: AbortSignal): Promise<void> {
    this.#emit({ type: 'retry', ...e, delayMs })
    await sleep(delayMs, signal)
  }

  /**
   * Reads the whole body, refusing more than the upstream's limit before buffering it. A body of a declared length
   * between {@link bodies}' bounds (64 KB to 2 MB) is copied into a reused buffer as it arrives: the socket's chunks die at once, and
   * the caller may give the buffer back ({@link UpstreamResponse.release}).
   */
  async #readBody (
    raw: Dispatcher.ResponseData, headers: Record<string, string>, where: string, upstream: string, lower?: number
  ): Promise<{ body: Buffer, pooled: boolean }> {
    const limit = Math.min(this.limits.responseBytes(upstream), lower ?? Infinity)
    const tooLargeBody = (): UpstreamError => {
      raw.body.destroy() // drops the socket rather than draining an unwanted body
      return tooLarge(`${where}: the answer`, limit, 'UPSTREAM_MAX_RESPONSE_BYTES', raw.statusCode)
    }
    const declared = Number(headers['content-length'])
    if (declared > limit) throw tooLargeBody()
    let into = Number.isSafeInteger(declared) && declared >= bodies.minBytes && declared <= bodies.maxBytes ? bodies.take(declared) : null
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of raw.body as AsyncIterable<Buffer>) {
      if (size + chunk.length > limit) throw tooLargeBody()
      if (into !== null && size + chunk.length <= into.length) {
        chunk.copy(into, size)
      } else {
        // More than declared (undici refuses that, but a pool must not trust it): chunks from here on.
        if (into !== null) chunks.push(into.subarray(0, size))
        into = null
        chunks.push(chunk)
      }
      size += chunk.length
    }
    if (into !== null) return { body: into.subarray(0, size), pooled: true }
    return { body: Buffer.concat(chunks, size), pooled: false }
  }

  #response (status: number, headers: Record<string, string>, body: Buffer, where: string, pooled: boolean): UpstreamResponse {
    // Decoded once: a body may be read more than once (a retry hint, then the caller's own reading).
    let decoded: string | undefined
    const text = (): string => (decoded ??= body.toString('utf8'))
    let released = !pooled
    return {
      status,
      headers,
      body,
      text,
      release: () => {
        if (released) return
        released = true
        bodies.give(body)
      },
      json: <T = unknown>(): T => {
        try {
          return JSON.parse(text()) as T
        } catch {
          throw new UpstreamError('invalid_upstream_response', `${where} answered ${status} with a body that is not JSON`, status)
        }
      },
    }
  }

  #emit (e: UpstreamEvent): void {
    try {
      this.#o.onEvent?.(e)
    } catch {
      // Metrics must never break a request.
    }
  }
}
