/**
 * The secrets completion callbacks are signed with (CALLBACK_SECRETS), one per API client, and the signing itself:
 * Standard Webhooks v1, through the `standardwebhooks` package, so what a receiver verifies with the same package
 * is what was signed here.
 */
import { inspect } from 'node:util'
import { Webhook } from 'standardwebhooks'

/** A decoded secret's length, as Standard Webhooks recommends (24 to 64 bytes). */
const MIN_BYTES = 24
const MAX_BYTES = 64
const FORMAT = /^whsec_([A-Za-z0-9+/]+={0,2})$/

/** One client's signing secret. It never prints: not in logs, not in an inspected configuration. */
export class CallbackSecret {
  readonly #webhook: Webhook

  constructor (secret: string) {
    this.#webhook = new Webhook(secret)
  }

  /** The `webhook-signature` header (`v1,<base64>`) for a message id, its timestamp and its exact body. */
  sign (messageId: string, timestamp: Date, body: string): string {
    return this.#webhook.sign(messageId, timestamp, body)
  }

  toJSON (): string {
    return '[callback secret]'
  }

  [inspect.custom] (): string {
    return '[callback secret]'
  }
}

/**
 * Parses CALLBACK_SECRETS (`name:whsec_…`, comma-separated; the name is the API client's name in
 * GATEWAY_API_KEYS) into a secret per client name, or says what is wrong without quoting a secret.
 */
export function parseCallbackSecrets (value: string | undefined): { secrets: Map<string, CallbackSecret> } | { problem: string } {
  const secrets = new Map<string, CallbackSecret>()
  const pairs = (value ?? '').split(',').map(s => s.trim()).filter(Boolean)
  for (const [index, pair] of pairs.entries()) {
    const at = pair.indexOf(':')
    const name = pair.slice(0, at)
    const match = FORMAT.exec(pair.slice(at + 1))
    if (at <= 0 || !/^[\w.-]+$/.test(name) || match === null) {
      return { problem: `entry ${index + 1} is not name:whsec_<base64> (name: letters, digits, _ . -; entries separated by commas)` }
    }
    const bytes = Buffer.from(match[1] as string, 'base64').length
    if (bytes < MIN_BYTES || bytes > MAX_BYTES) {
      return { problem: `the secret of client "${name}" decodes to ${bytes} bytes; use ${MIN_BYTES} to ${MAX_BYTES} random bytes (e.g. whsec_$(openssl rand -base64 32))` }
    }
    if (secrets.has(name)) return { problem: `client "${name}" has two secrets` }
    secrets.set(name, new CallbackSecret(pair.slice(at + 1)))
  }
  return { secrets }
}

/**
 * CALLBACK_RETRY_SCHEDULE_SECONDS: the delays after each failed attempt, comma-separated (decimals allowed, so tests
 * can shorten them), or what is wrong.
 */
export function parseRetrySchedule (value: string): { delays: number[] } | { problem: string } {
  const parts = value.split(',').map(s => s.trim())
  const delays = parts.map(Number)
  if (parts.length === 0 || parts.length > 30 || parts.some((p, i) => !/^\d+(\.\d+)?$/.test(p) || !((delays[i] as number) > 0))) {
    return { problem: `expected 1 to 30 delays in seconds, each above 0, separated by commas (e.g. 5,300,1800), got "${value}"` }
  }
  return { delays }
}
