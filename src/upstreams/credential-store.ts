/**
 * Credentials an upstream rotates (DrChrono's OAuth tokens: each refresh token works once), kept where every
 * replica and every restart finds the newest ones. The gateway's store is PostgreSQL, encrypted; adapter tests
 * use the in-process one here.
 */

/** One stored credential. */
export interface StoredCredential {
  /**
   * A digest of the configured values it was first seeded from: when the configuration changes, the new values
   * win over what is stored (an operator pasted fresh tokens); while it stays, what is stored wins (it is newer).
   */
  seed: string
  /** The upstream's own JSON: tokens and their expiry. */
  value: Record<string, unknown>
}

/** Where rotating credentials live. Names are fixed per upstream (e.g. 'drchrono'). */
export interface CredentialStore {
  /** The stored credential, or null when there is none yet. */
  read (name: string): Promise<StoredCredential | null>
  /**
   * Runs `fn` holding a lock every replica respects, with the credential as stored at that moment. What `fn`
   * returns replaces it before the lock is released (undefined leaves it as it is); resolves with what is stored
   * afterwards. Single-flight refreshes across replicas are built on this.
   */
  update (name: string, fn: (current: StoredCredential | null) => Promise<StoredCredential | undefined>): Promise<StoredCredential | null>
}

/** Credentials in this process only: for adapter tests. The lock is a promise chain per name. */
export class MemoryCredentialStore implements CredentialStore {
  readonly #values = new Map<string, StoredCredential>()
  readonly #locks = new Map<string, Promise<unknown>>()

  async read (name: string): Promise<StoredCredential | null> {
    const value = this.#values.get(name)
    return value === undefined ? null : structuredClone(value)
  }

  async update (name: string, fn: (current: StoredCredential | null) => Promise<StoredCredential | undefined>): Promise<StoredCredential | null> {
    const run = (this.#locks.get(name) ?? Promise.resolve()).catch(() => {}).then(async () => {
      const next = await fn(await this.read(name))
      if (next !== undefined) this.#values.set(name, structuredClone(next))
      return this.read(name)
    })
    this.#locks.set(name, run)
    return run
  }
}
