/**
 * The contract between the webhook route and an upstream that finishes jobs by calling the gateway back: the
 * route guards and reads the delivery, the upstream's handler verifies and interprets it, the engine applies it.
 */
import type { JobErrorCode } from '../domain/errors.js'

/** What one webhook delivery means for the gateway, as the upstream's handler reads it. */
export type WebhookResult =
  /** Nothing to do for any job (a ping, an event type the gateway ignores): answer this. */
  | { kind: 'reply', status: number, body: unknown }
  /** Finish the job parked under `key`: store `records` and complete it, or fail it with `error`. */
  | {
    kind: 'deliver'
    /** The upstream's id of this delivery: a second delivery with the same id changes nothing. */
    messageId: string
    key: string
    outcome: { records: readonly string[] } | { error: { code: JobErrorCode, message: string } }
    reply: { status: number, body: unknown }
  }

/** An upstream that finishes jobs by calling the gateway back at `POST /webhooks/<name>`. */
export interface WebhookHandler<Settings = unknown> {
  /**
   * The header the upstream signs deliveries in (lower case) and the form a well-formed value has. A delivery
   * without it is refused from its headers, before a byte of its body is read.
   */
  readonly signatureHeader: { name: string, format: RegExp }
  /** The largest body a genuine delivery has, in bytes: beyond it 413, from `Content-Length` when announced. */
  readonly maxBodyBytes: number
  /**
   * Verifies (before parsing anything) and interprets one delivery. `rawBody` is the exact bytes received.
   * Throws {@link WebhookRejected} for a delivery that must be refused.
   */
  receive (input: { rawBody: Buffer, headers: Record<string, string | string[] | undefined>, settings: Settings, receivedAt: Date }): WebhookResult
}
