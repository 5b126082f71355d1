/**
 * The encryption of stored upstream credentials (TOKEN_ENCRYPTION_KEY): AES-256-GCM with a random 12-byte IV per
 * write and its 16-byte authentication tag, so a row that was altered, moved to another name or sealed with another
 * key is refused rather than decrypted into garbage. The configured key is never used directly: HKDF derives one
 * subkey to encrypt, one to digest (the `seed` column) and one to name the key (`key_id`), so no output of one use
 * helps against another.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { CredentialStoreError } from '../domain/errors.js'

/** Bytes in a TOKEN_ENCRYPTION_KEY. */
export const TOKEN_KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16

/**
 * Decodes a key given as base64 (standard or URL-safe alphabet, padding optional). Returns the problem as text
 * when it is not exactly {@link TOKEN_KEY_BYTES} bytes; the text never repeats the value.
 */
export function decodeTokenKey (text: string): { key: Buffer } | { problem: string } {
  const trimmed = text.trim()
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    return { problem: 'expected 32 random bytes in base64 (e.g. from `openssl rand -base64 32`), but the value is not base64' }
  }
  const key = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
  if (key.length !== TOKEN_KEY_BYTES) {
    return { problem: `expected 32 random bytes in base64 (44 characters, e.g. from \`openssl rand -base64 32\`), but it decodes to ${key.length} bytes` }
  }
  return { key }
}

/** One TOKEN_ENCRYPTION_KEY, ready to seal, open and digest. Its secret stays in private fields (never logged). */
export class TokenKey {
  /** A short digest naming the key in the `key_id` column and in messages: not the key, nor a way to it. */
  readonly id: string
  readonly #encryption: Buffer
  readonly #digest: Buffer

  constructor (secret: Buffer) {
    if (secret.length !== TOKEN_KEY_BYTES) throw new Error(`a token key has ${TOKEN_KEY_BYTES} bytes, not ${secret.length}`)
    const derive = (info: string, length: number): Buffer => Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), `bulk-gateway ${info}`, length))
    this.#encryption = derive('credential encryption', 32)
    this.#digest = derive('credential seed digest', 32)
    this.id = derive('key id', 8).toString('hex')
  }

  /** A fresh random key (development, when none is configured). */
  static generate (): { key: TokenKey, secret: Buffer } {
    const secret = randomBytes(TOKEN_KEY_BYTES)
    return { key: new TokenKey(secret), secret }
  }

  /** A keyed digest (HMAC-SHA256): comparable while the key stays, meaningless without it. */
  digest (text: string): string {
    return createHmac('sha256', this.#digest).update(text).digest('hex')
  }

  /** iv (12 bytes) ‖ tag (16 bytes) ‖ ciphertext. `context` is authenticated, not stored: open needs the same. */
  seal (plaintext: Buffer, context: string): Buffer {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#encryption, iv, { authTagLength: TAG_BYTES })
    cipher.setAAD(Buffer.from(context, 'utf8'))
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
    return Buffer.concat([iv, cipher.getAuthTag(), body])
  }

  /** The plaintext, or {@link CredentialStoreError} `credential_tampered` when anything sealed or its context changed. */
  open (sealed: Buffer, context: string, what: string): Buffer {
    if (sealed.length < IV_BYTES + TAG_BYTES) throw tampered(what)
    const decipher = createDecipheriv('aes-256-gcm', this.#encryption, sealed.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES })
    decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
    decipher.setAAD(Buffer.from(context, 'utf8'))
    try {
      return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()])
    } catch {
      throw tampered(what)
    }
  }

  toJSON (): { id: string } {
    return { id: this.id }
  }
}

function tampered (what: string): CredentialStoreError {
  return new CredentialStoreError('credential_tampered',
    `${what} fails its integrity check under TOKEN_ENCRYPTION_KEY (key id matches, content does not): it was altered in the database. ` +
    'Restore it from a backup, or delete it and configure a fresh token pair')
}
