// The embedded server: data survives a restart, and a restart works after the previous gateway was
// killed with SIGKILL, whether its postgres child survived it (an orphan) or died too (a stale pid file).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import pg from 'pg'
import t, { type Test } from 'tap'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.js'

const log = { debug () {}, info () {}, warn () {}, error () {} }
const embeddedModule = pathToFileURL(join(import.meta.dirname, '../../src/db/embedded.ts')).href

/** A data dir for this test; at teardown its servers are stopped (also orphans), then it is removed. */
async function dataDir (t: Test): Promise<{ dir: string; started: EmbeddedPostgres[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'bg-embedded-'))
  const started: EmbeddedPostgres[] = []
  t.teardown(async () => {
    for (const server of started) await server.stop()
    const pid = await postmasterPid(dir).catch(() => undefined)
    if (pid) signal(pid, 'SIGQUIT') // a test that failed half-way may leave one behind
    await rm(dir, { recursive: true, force: true })
  })
  return { dir, started }
}

async function sql<R = Record<string, unknown>> (url: string, text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(text, values)).rows as R[]
  } finally {
    await client.end()
  }
}

async function postmasterPid (dir: string): Promise<number> {
  return Number((await readFile(join(dir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0])
}

function signal (pid: number, name: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, name)
    return true
  } catch {
    return false
  }
}

/**
 * A separate gateway-like process holding the server; resolves once its URL is printed. With `thenEnd`,
 * its code ends right after the start, without stop().
 */
async function holdInChild (dir: string, thenEnd = false): Promise<{ child: ChildProcess; url: string }> {
  const code = `
    const { startEmbeddedPostgres } = await import(${JSON.stringify(embeddedModule)})
    const log = { debug() {}, info() {}, warn() {}, error() {} }
    const server = await startEmbeddedPostgres({ dataDir: process.env.HOLD_DIR, log })
    console.log(server.url)
    if (!${thenEnd}) setInterval(() => {}, 60_000)`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    env: { ...process.env, HOLD_DIR: dir },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const line = out.split('\n').find((l) => l.startsWith('postgresql://'))
      if (line) resolve(line.trim())
    })
    child.once('exit', (code) => reject(new Error(`holder exited with ${code} before starting postgres`)))
  })
  return { child, url }
}

async function killed (child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

t.test('initialises once, then keeps its data across a restart (past a pid file with a reused PID)', async (t) => {
  const { dir, started } = await dataDir(t)
  const first = await startEmbeddedPostgres({ dataDir: dir, log })
  started.push(first)
  t.match(first.url, /^postgresql:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/bulk_gateway$/)
  await sql(first.url, 'CREATE TABLE kept (note text)')
  await sql(first.url, 'INSERT INTO kept VALUES ($1)', ['still here'])
  await first.stop()
  await first.stop() // idempotent
  // A pid file naming a live process that is not our postgres: what a reused PID looks like. Not our own
  // PID: postgres would see its parent's PID as stale by itself; our parent's PID it would not.
  await writeFile(join(dir, 'postgres', 'postmaster.pid'), `${process.ppid}\n${join(dir, 'postgres')}\n`)

  const second = await startEmbeddedPostgres({ dataDir: dir, log })
  started.push(second)
  t.same(await sql(second.url, 'SELECT note FROM kept'), [{ note: 'still here' }])
  const [encoding] = await sql(second.url, 'SELECT pg_encoding_to_char(encoding) AS name FROM pg_database WHERE datname = current_database()')
  t.equal(encoding?.name, 'UTF8', 'not the SQL_ASCII a C-locale initdb would pick')
})

t.test('restarts after kill -9 of a gateway whose postgres survived it', async (t) => {
  const { dir, started } = await dataDir(t)
  const { child, url: oldUrl } = await holdInChild(dir)
  const orphan = await postmasterPid(dir)
  await killed(child)
  t.ok(signal(orphan, 0), 'postgres outlives the killed gateway')

  const server = await startEmbeddedPostgres({ dataDir: dir, log })
  started.push(server)
  t.same(await sql(server.url, 'SELECT 1 AS ok'), [{ ok: 1 }])
  t.not(await postmasterPid(dir), orphan, 'a new postmaster holds the data dir')
  await t.rejects(sql(oldUrl, 'SELECT 1'), 'the orphan no longer listens')
})

t.test('restarts after kill -9 of both the gateway and its postgres (stale postmaster.pid)', async (t) => {
  const { dir, started } = await dataDir(t)
  const { child } = await holdInChild(dir)
  const stale = await postmasterPid(dir)
  signal(stale, 'SIGKILL')
  await killed(child)
  await sleep(200) // let the postmaster's own children notice and exit
  t.equal(await postmasterPid(dir), stale, 'the pid file is left behind')

  const server = await startEmbeddedPostgres({ dataDir: dir, log })
  started.push(server)
  t.same(await sql(server.url, 'SELECT 1 AS ok'), [{ ok: 1 }])
})

t.test('a process that ends without stop() is not kept alive by the server, and stops it', async (t) => {
  const { dir } = await dataDir(t)
  const { child } = await holdInChild(dir, true)
  const pid = await postmasterPid(dir)
  const code = await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(child.exitCode)))
  t.equal(code, 0, 'the process ended by itself')
  for (let i = 0; i < 50 && (await postmasterPid(dir).catch(() => undefined)); i++) await sleep(100)
  await t.rejects(postmasterPid(dir), { code: 'ENOENT' }, 'postgres shut down (its pid file is gone)')
  t.notOk(signal(pid, 0) && (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')), 'no postgres process left')
})
