/** The statements of `upstream_credentials`: rows hold ciphertext and digests only (see db/credential-store.ts). */
import { query, sql, type Queryable } from './sql.js'

/** One row as stored. */
export interface CredentialRow {
  name: string
  /** Keyed digest of the caller's seed. */
  seed: string
  keyId: string
  ciphertext: Buffer
}

/**
 * Holds the credential's lock until the caller's transaction ends: every replica that changes the row takes it
 * first, so a refresh (read, ask the upstream, write) is one step for all of them. The name is namespaced so no
 * other advisory lock of the gateway can collide with it.
 */
export async function lockCredential (db: Queryable, name: string): Promise<void> {
  await query(db, sql`SELECT pg_advisory_xact_lock(hashtextextended(${`upstream-credential:${name}`}, 0))`)
}

export async function selectCredential (db: Queryable, name: string): Promise<CredentialRow | null> {
  const { rows } = await query<CredentialRow>(db, sql`
    SELECT name, seed, key_id AS "keyId", ciphertext FROM upstream_credentials WHERE name = ${name}`)
  return rows[0] ?? null
}

export async function upsertCredential (db: Queryable, row: CredentialRow): Promise<void> {
  await query(db, sql`
    INSERT INTO upstream_credentials (name, seed, key_id, ciphertext, updated_at)
    VALUES (${row.name}, ${row.seed}, ${row.keyId}, ${row.ciphertext}, now())
    ON CONFLICT (name) DO UPDATE SET seed = EXCLUDED.seed, key_id = EXCLUDED.key_id,
      ciphertext = EXCLUDED.ciphertext, updated_at = EXCLUDED.updated_at`)
}
