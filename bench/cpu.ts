/**
 * CPU time of the processes a measurement involves, from /proc: the gateway, PostgreSQL (the postmaster and
 * every backend) and this process (which runs the simulators). Tells whether a figure was bound by CPU and by whose.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import pg from 'pg'

const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

interface Stat { ppid: number, own: number, children: number }

/** `/proc/<pid>/stat`, or a thread's when `pid` is `<pid>/task/<tid>`. */
function stat (pid: number | string): Stat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may hold spaces.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return { ppid: Number(f[1]), own: (Number(f[11]) + Number(f[12])) / TICKS, children: (Number(f[13]) + Number(f[14])) / TICKS }
  } catch {
    return null
  }
}

/** A process's parent's pid (NaN when it is gone). */
export function parentPid (pid: number): number {
  return stat(pid)?.ppid ?? NaN
}

/** CPU seconds a process has used (itself only). */
export function processCpu (pid: number): number {
  return stat(pid)?.own ?? NaN
}

/** CPU seconds one thread of a process has used (the main thread's id is the process's). */
export function threadCpu (pid: number, tid: number): number {
  return stat(`${pid}/task/${tid}`)?.own ?? NaN
}

/**
 * The pid of PostgreSQL's postmaster, the parent of every backend; null when the server is not a process of this
 * machine that /proc shows (a remote DATABASE_URL).
 */
export async function postmasterPid (databaseUrl: string): Promise<number | null> {
  // The backend's parent is the postmaster: read it while the connection (and so the backend) is alive.
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
    return stat(Number(rows[0]?.pid))?.ppid ?? null
  } finally {
    await client.end()
  }
}

/**
 * A reader of PostgreSQL's CPU seconds: its postmaster, the backends alive now and those that have exited.
 * Null when the server is not a process of this machine that /proc shows (a remote DATABASE_URL).
 */
export async function postgresCpuReader (databaseUrl: string): Promise<(() => number) | null> {
  const postmaster = await postmasterPid(databaseUrl)
  if (postmaster === null) return null
  return () => {
    const root = stat(postmaster)
    if (root === null) return NaN
    let total = root.own + root.children
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue
      const s = stat(Number(entry))
      if (s !== null && s.ppid === postmaster) total += s.own
    }
    return total
  }
}

/** CPU seconds used by the gateway, PostgreSQL and this process between start() and the returned stop(). */
export async function cpuMeter (databaseUrl: string, gatewayPid: number): Promise<() => { gateway: number, postgres: number | null, bench: number }> {
  const pgCpu = await postgresCpuReader(databaseUrl)
  const gw0 = processCpu(gatewayPid)
  const pg0 = pgCpu?.() ?? NaN
  const me0 = process.cpuUsage()
  return () => {
    const me = process.cpuUsage(me0)
    return { gateway: processCpu(gatewayPid) - gw0, postgres: pgCpu === null ? null : pgCpu() - pg0, bench: (me.user + me.system) / 1e6 }
  }
}
