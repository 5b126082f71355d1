/**
 * Where TOKEN_ENCRYPTION_KEY comes from. Configured: that key (and TOKEN_ENCRYPTION_KEY_PREVIOUS while changing
 * keys). Unset in production: none; the configuration already refused to start when stored tokens would need one,
 * and anything else that tries gets an error naming the variable. Unset elsewhere (development, tests): a key
 * generated once into `<DATA_DIR>/token-encryption.key` (mode 0600) and reused, so a developer's stored tokens
 * survive restarts without any setup. Resolved on first use: a gateway that never stores a credential never
 * creates the file.
 */
import { randomUUID } from 'node:crypto'
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { TokenKey, decodeTokenKey } from './credential-crypto.js'
import { CredentialStoreError } from '../domain/errors.js'
import type { TokenKeys, TokenKeySource } from './credential-store.js'
import type { DbLogger } from './db-logger.js'

/** The configuration this needs (the gateway's `Config` has it). */
export interface TokenKeyConfig {
  NODE_ENV: string
  DATA_DIR: string
  TOKEN_ENCRYPTION_KEY?: TokenKey | undefined
  TOKEN_ENCRYPTION_KEY_PREVIOUS?: TokenKey | undefined
}

export const KEY_FILE_NAME = 'token-encryption.key'

/** The keys for the credential store, resolved once (a failed attempt is tried again at the next use). */
export function tokenKeySource (config: TokenKeyConfig, log: DbLogger): TokenKeySource {
  let resolved: ReturnType<TokenKeySource> | null = null
  return () => {
    resolved ??= resolveKeys(config, log).catch((err: unknown) => {
      resolved = null
      throw err
    })
    return resolved
  }
}

async function resolveKeys (config: TokenKeyConfig, log: DbLogger): Promise<TokenKeys> {
  const previous = config.TOKEN_ENCRYPTION_KEY_PREVIOUS
  if (config.TOKEN_ENCRYPTION_KEY !== undefined) return { current: config.TOKEN_ENCRYPTION_KEY, previous }
  if (config.NODE_ENV === 'production') {
    throw new CredentialStoreError('token_key_missing',
      'TOKEN_ENCRYPTION_KEY is not set: the gateway needs it to store the upstream tokens it rotates ' +
      '(32 random bytes in base64, e.g. from `openssl rand -base64 32`); set it on every replica and restart')
  }
  return { current: await developmentKey(config.DATA_DIR, log), previous }
}

/** The key in `<dataDir>/token-encryption.key`, created when missing. Safe when several processes race to create it. */
export async function developmentKey (dataDir: string, log: DbLogger): Promise<TokenKey> {
  const path = resolve(dataDir, KEY_FILE_NAME)
  const existing = await readKeyFile(path, log)
  if (existing !== null) return existing
  await mkdir(dataDir, { recursive: true })
  const { key, secret } = TokenKey.generate()
  // Written whole under a temporary name, then linked into place: another process sees no file or a whole one,
  // and link() fails if one appeared meanwhile, in which case that one is used.
  // The name is random: two callers in one process within one millisecond (pid and time alike) once collided here.
  const temporary = join(dataDir, `.${KEY_FILE_NAME}.${process.pid}.${randomUUID()}`)
  await writeFile(temporary, `${secret.toString('base64')}\n`, { mode: 0o600, flag: 'wx' })
  try {
    await link(temporary, path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    const theirs = await readKeyFile(path, log)
    if (theirs === null) throw err
    return theirs
  } finally {
    await unlink(temporary).catch(() => {})
  }
  log.info({ path, keyId: key.id },
    'TOKEN_ENCRYPTION_KEY is not set: generated a key for stored upstream tokens (development only; set TOKEN_ENCRYPTION_KEY in production)')
  return key
}

async function readKeyFile (path: string, log: DbLogger): Promise<TokenKey | null> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  const decoded = decodeTokenKey(text)
  if ('problem' in decoded) {
    throw new CredentialStoreError('token_key_missing', `${path}: ${decoded.problem}; delete the file to generate a new key (tokens stored under the old one are then lost)`)
  }
  const key = new TokenKey(decoded.key)
  const { mode } = await stat(path)
  if ((mode & 0o077) !== 0) log.warn({ path }, 'the generated token key file is readable by other users: chmod 600 it')
  log.info({ path, keyId: key.id }, 'TOKEN_ENCRYPTION_KEY is not set: using the key generated earlier for stored upstream tokens (development only)')
  return key
}
