/**
 * What the engine's callback deliverer (engine/callbacks.ts) asks of the outbound HTTP client that carries
 * completion callbacks (upstreams/callback-client.ts): one signed POST, one answer. Neither side imports the other.
 */

/** Why an attempt got no HTTP answer, as a stable code (never the address, the URL or an error's text). */
export type CallbackSendError =
  /** No complete answer within CALLBACK_TIMEOUT_SECONDS (connect, headers and the bounded body read). */
  | 'timeout'
  /** The URL guard refused the address (private, loopback, link-local…; plain http in production). */
  | 'address_refused'
  /** The connection failed or broke (refused, reset, DNS). */
  | 'connection_failed'

/** The receiver's HTTP status, or why there was none. The response body is read (bounded) and dropped. */
export type CallbackSendResult = { status: number } | { error: CallbackSendError }

/** One delivery attempt: a POST of `body` with `headers` to `url`. Redirects are never followed. */
export interface CallbackSend {
  url: string
  headers: Record<string, string>
  body: string
  /** Aborted when the gateway shuts down; the attempt then ends at once. */
  signal: AbortSignal
}

export interface CallbackSender {
  send (attempt: CallbackSend): Promise<CallbackSendResult>
  /** Closes the connections it keeps. */
  close (): Promise<void>
}

/** Whether the URL guard would let a callback URL through before any connection (its address judged later too). */
export interface CallbackUrlCheck {
  refuses (url: URL): boolean
}
