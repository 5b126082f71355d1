/**
 * The outbound client of completion callbacks: one POST per attempt, through the same URL guard as the links
 * upstreams supply (url-guard.ts), so a callback reaches a private, loopback or link-local address only when its
 * origin is listed in UPSTREAM_ALLOWED_ORIGINS, and in production plain http only then too. Redirects are never
 * followed (a 3xx is the answer). One deadline bounds the whole attempt, connection and answer included, and the
 * answer's body is read up to a small limit and dropped: a receiver that hangs or streams forever costs one
 * connection for CALLBACK_TIMEOUT_SECONDS, nothing more. Nothing here logs: the URL may carry a secret in its query.
 */
import { Agent, request } from 'undici'
import type { CallbackSend, CallbackSender, CallbackSendResult, CallbackUrlCheck } from '../contract/callback.js'
import { errorCode } from '../lib/values.js'
import { UrlGuard, type UrlGuardOptions } from './url-guard.js'

/** The most of an answer's body read (to keep the connection reusable); the rest is cut off with the connection. */
const MAX_ANSWER_BYTES = 64 * 1024

export interface CallbackClientOptions {
  /** CALLBACK_TIMEOUT_SECONDS, in ms: the deadline of one attempt. */
  timeoutMs: number
  /** UPSTREAM_ALLOWED_ORIGINS and https-only in production, as for the upstream client. */
  urlGuard?: UrlGuardOptions
}

export class CallbackClient implements CallbackSender, CallbackUrlCheck {
  readonly #guard: UrlGuard
  /** Origins allowed by name. */
  readonly #agent: Agent
  /** Every other origin: its connections resolve through the guard's lookup, and connect to the address judged. */
  readonly #guardedAgent: Agent
  readonly #timeoutMs: number

  constructor (o: CallbackClientOptions) {
    this.#timeoutMs = o.timeoutMs
    this.#guard = new UrlGuard(o.urlGuard)
    const connect = { timeout: Math.min(o.timeoutMs, 10_000) }
    this.#agent = new Agent({ keepAliveTimeout: 10_000, connect })
    this.#guardedAgent = new Agent({ keepAliveTimeout: 10_000, connect: this.#guard.connector(connect) })
  }

  refuses (url: URL): boolean {
    try {
      this.#guard.check(url, null)
      return false
    } catch {
      return true
    }
  }

  async send ({ url, headers, body, signal }: CallbackSend): Promise<CallbackSendResult> {
    const target = new URL(url)
    if (this.refuses(target)) return { error: 'address_refused' }
    const dispatcher = this.#guard.check(target, null) === 'public' ? this.#guardedAgent : this.#agent
    const deadline = AbortSignal.timeout(this.#timeoutMs)
    try {
      const answer = await request(target, {
        dispatcher,
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.any([signal, deadline]),
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      })
      // The status is the answer; the body only has to leave the socket. dump() stops at the limit and closes it.
      await answer.body.dump({ limit: MAX_ANSWER_BYTES }).catch(() => {})
      return { status: answer.statusCode }
    } catch (err) {
      if (deadline.aborted) return { error: 'timeout' }
      if (signal.aborted) throw signal.reason
      const code = errorCode(err)
      if (code === 'upstream_url_refused') return { error: 'address_refused' }
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return { error: 'timeout' }
      return { error: 'connection_failed' }
    }
  }

  async close (): Promise<void> {
    await Promise.all([this.#agent.destroy(), this.#guardedAgent.destroy()])
  }
}
