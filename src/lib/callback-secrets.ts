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

/** Secrets a client may have at once: the new one and the old one, while its receivers move from one to the other. */
export const MAX_SECRETS_PER_CLIENT = 2

/**
 * One client's signing secret, or two during a rotation: each request then carries a signature by each, so a
 * receiver verifying with either accepts it (Standard Webhooks: a space-separated list of signatures). It never
 * prints: not in logs, not in an inspected configuration.
 */
export class CallbackSecret {
  readonly #webhooks: Webhook[]

  constructor (secrets: readonly string[]) {
    this.#webhooks = secrets.map(secret => new Webhook(secret))
  }

  /** The `webhook-signature` header (`v1,<base64>`, one per secret) for a message id, its timestamp and its exact body. */
  sign (messageId: string, timestamp: Date, body: string): string {
    return this.#webhooks.map(webhook => webhook.sign(messageId, timestamp, body)).join(' ')
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
 * GATEWAY_API_KEYS; a name listed twice has two secrets, both signing, for a rotation) into the secrets of each
 * client name, or says what is wrong without quoting a secret.
 */
export function parseCallbackSecrets (value: string | undefined): { secrets: Map<string, CallbackSecret> } | { problem: string } {
  const listed = new Map<string, string[]>()
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
    const own = listed.get(name) ?? []
    // Compared as keys: two spellings of one base64 value (padding, unused bits) are the same secret.
    const key = (secret: string): string => Buffer.from(FORMAT.exec(secret)?.[1] ?? '', 'base64').toString('hex')
    if (own.some(secret => key(secret) === key(pair.slice(at + 1)))) return { problem: `client "${name}" lists the same secret twice` }
    if (own.length === MAX_SECRETS_PER_CLIENT) {
      return { problem: `client "${name}" has more than ${MAX_SECRETS_PER_CLIENT} secrets (during a rotation: the new one and the old one)` }
    }
    listed.set(name, [...own, pair.slice(at + 1)])
  }
  return { secrets: new Map([...listed].map(([name, own]) => [name, new CallbackSecret(own)])) }
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
