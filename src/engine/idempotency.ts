/**
 * How an Idempotency-Key is kept. A key is whatever the client chose, and may hold patient data (a name, a
 * patient id): it is never stored. The row holds a digest of the key, and the body's identity as a digest of
 * the key and the request hash: a replay (same key) finds its row and compares, while a dump of the table tells
 * neither key nor body unless the key itself can be guessed (clients are told to use random keys). No secret is
 * needed, so every replica and every restart agree. The SQL migration 20261207060815 computes the same digests.
 */
import { createHash } from 'node:crypto'

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex')

/** What the `key` column holds for a client's Idempotency-Key. */
export function idempotencyKeyDigest (key: string): string {
  return sha256(key)
}

/** What the `request_hash` column holds: the request's identity (canonical.ts), keyed by the client's key. */
export function idempotencyBodyDigest (key: string, requestHash: string): string {
  return sha256(`${key}\n${requestHash}`)
}
