/**
 * Rotating upstream credentials (DrChrono's OAuth tokens) in PostgreSQL, where every replica and every restart
 * finds the newest ones. Each row is one credential sealed with TOKEN_ENCRYPTION_KEY (db/credential-crypto.ts):
 * the ciphertext holds the caller's seed and value; the `seed` column holds only a keyed digest of the seed, and
 * `key_id` names the key that sealed it. Nothing in the table is token material in clear.
 *
 * `update` runs the caller's function inside one transaction holding an advisory lock on the name: a refresh
 * (read, ask the upstream, write the rotated pair) is one step for every replica. It satisfies the upstreams'
 * `CredentialStore` contract structurally; this module does not import the upstreams.
 */
import type pg from 'pg'
import type { TokenKey } from './credential-crypto.js'
import { CredentialStoreError } from '../domain/errors.js'
import { lockCredential, selectCredential, upsertCredential, type CredentialRow } from './sql/credentials.js'
import { transaction } from './sql/sql.js'

/** One credential as callers see it (the upstreams' `StoredCredential`). */
export interface Credential {
  /** The caller's digest of the configured values it came from. */
  seed: string
  /** The upstream's own JSON. */
  value: Record<string, unknown>
}

/** The keys in use: `current` seals every write; `previous` still opens rows sealed before a key change. */
export interface TokenKeys {
  current: TokenKey
  previous?: TokenKey | undefined
}

/** Resolves the keys when a row is first read or written (a key file may be created then, see token-keys.ts). */
export type TokenKeySource = () => Promise<TokenKeys>

interface Opened { credential: Credential, key: TokenKey }

export class PgCredentialStore {
  readonly #pool: pg.Pool
  readonly #keys: TokenKeySource

  constructor (pool: pg.Pool, keys: TokenKeySource) {
    this.#pool = pool
    this.#keys = keys
  }

  /** The stored credential, or null. A row sealed with the previous key is sealed again with the current one. */
  async read (name: string): Promise<Credential | null> {
    const row = await selectCredential(this.#pool, name)
    if (row === null) return null
    const keys = await this.#keys()
    const opened = open(row, keys)
    if (opened.key !== keys.current) return this.update(name, async () => undefined)
    return opened.credential
  }

  /**
   * Runs `fn` under the credential's lock with the row as stored; what it returns replaces the row before the
   * lock is released (undefined keeps it). An error in `fn` rolls back and is rethrown. Resolves with what is
   * stored afterwards.
   */
  async update (name: string, fn: (current: Credential | null) => Promise<Credential | undefined>): Promise<Credential | null> {
    return transaction(this.#pool, async client => {
      // `fn` may ask the upstream (a token refresh, bounded by its own timeout): should it hang past that, the
      // server ends the transaction, releasing the lock and the connection, rather than holding them forever.
      await client.query("SET LOCAL idle_in_transaction_session_timeout = '60s'")
      await lockCredential(client, name)
      const row = await selectCredential(client, name)
      const opened = row === null ? null : open(row, await this.#keys())
      const next = await fn(opened === null ? null : structuredClone(opened.credential))
      if (next === undefined) {
        if (opened === null) return null
        const keys = await this.#keys()
        // Only a key change makes an unchanged credential worth writing: it is sealed again with the new key.
        if (opened.key === keys.current) return opened.credential
        await upsertCredential(client, seal(name, opened.credential, keys.current))
        return opened.credential
      }
      if (typeof next.seed !== 'string' || next.value === null || typeof next.value !== 'object') {
        throw new TypeError('a credential is { seed: string, value: object }')
      }
      await upsertCredential(client, seal(name, next, (await this.#keys()).current))
      return structuredClone(next)
    })
  }
}

/** What the seal authenticates beside the plaintext: a row copied to another name, or with another seed, fails. */
function context (row: Pick<CredentialRow, 'name' | 'seed' | 'keyId'>): string {
  return `upstream_credentials\u0000${row.name}\u0000${row.seed}\u0000${row.keyId}`
}

function seal (name: string, credential: Credential, key: TokenKey): CredentialRow {
  const head = { name, seed: key.digest(credential.seed), keyId: key.id }
  const plaintext = Buffer.from(JSON.stringify({ seed: credential.seed, value: credential.value }), 'utf8')
  return { ...head, ciphertext: key.seal(plaintext, context(head)) }
}

function open (row: CredentialRow, keys: TokenKeys): Opened {
  const key = [keys.current, keys.previous].find(k => k !== undefined && k.id === row.keyId)
  if (key === undefined) {
    const known = keys.previous === undefined ? keys.current.id : `${keys.current.id}, previous ${keys.previous.id}`
    throw new CredentialStoreError('token_key_mismatch',
      `the stored "${row.name}" credential was encrypted with another TOKEN_ENCRYPTION_KEY (key id ${row.keyId}; this gateway has ${known}). ` +
      'Set TOKEN_ENCRYPTION_KEY back to that key, or set it as TOKEN_ENCRYPTION_KEY_PREVIOUS beside the new one to re-encrypt it; ' +
      `if that key is lost, delete the row (DELETE FROM upstream_credentials WHERE name = '${row.name}') and configure a fresh token pair`)
  }
  const what = `the stored "${row.name}" credential`
  const plaintext = key.open(row.ciphertext, context(row), what)
  let parsed: unknown
  try {
    parsed = JSON.parse(plaintext.toString('utf8'))
  } catch {
    parsed = null
  }
  const { seed, value } = (parsed ?? {}) as Partial<Credential>
  // Authentic but not ours (written by a later version?): refuse rather than guess.
  if (typeof seed !== 'string' || value === null || typeof value !== 'object') {
    throw new CredentialStoreError('credential_tampered', `${what} decrypts but is not a credential this gateway wrote`)
  }
  // The column is authenticated as part of the context; checking it too catches a seed digest under another key.
  if (key.digest(seed) !== row.seed) throw new CredentialStoreError('credential_tampered', `${what} does not match its seed digest`)
  return { credential: { seed, value }, key }
}
