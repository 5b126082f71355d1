/**
 * Metriport's webhook signature: `x-metriport-signature` = hex HMAC-SHA256 of the raw body with the webhook
 * key. Shared by the gateway's webhook handler (verify) and the simulator (sign), so both hash the same bytes.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { WebhookRejected } from '../../domain/errors.js'

/** The header Metriport signs its webhooks in. */
export const SIGNATURE_HEADER = 'x-metriport-signature'

/** A well-formed signature: hex HMAC-SHA256 (surrounding spaces are trimmed). Checked before the body is read. */
export const SIGNATURE_FORMAT = /^\s*[0-9a-f]{64}\s*$/i

const HEX_SHA256 = /^[0-9a-f]{64}$/i

/** The hex signature of exactly these bytes. */
export function signWebhook (body: string | Buffer, webhookKey: string): string {
  return createHmac('sha256', webhookKey).update(body).digest('hex')
}

/**
 * Throws {@link WebhookRejected} 401 unless `header` is the signature of `rawBody`. Runs before anything is
 * parsed; the comparison is constant-time over equal-length buffers (timingSafeEqual throws on unequal ones,
 * so a malformed header is refused before it).
 */
export function verifyWebhookSignature (rawBody: Buffer, header: string | string[] | undefined, webhookKey: string): void {
  if (typeof header !== 'string') {
    throw new WebhookRejected(401, `The ${SIGNATURE_HEADER} header is missing or repeated.`)
  }
  const given = header.trim()
  if (!HEX_SHA256.test(given)) throw new WebhookRejected(401, `The ${SIGNATURE_HEADER} header is not a hex HMAC-SHA256.`)
  const expected = createHmac('sha256', webhookKey).update(rawBody).digest()
  const actual = Buffer.from(given, 'hex')
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw new WebhookRejected(401, `The ${SIGNATURE_HEADER} header does not match the body.`)
  }
}
