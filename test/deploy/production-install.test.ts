/**
 * What the container image runs, proved without a container engine (there is none on the project's machines).
 *
 * The Dockerfile is parsed, and its build stage's commands are run as they are, outside a container, on a copy
 * of the build context (the project's files less .gitignore'd and .dockerignore'd ones): `npm ci`, the build,
 * the prune. The runtime stage is then assembled from exactly what its `COPY --from=build` lines take, and its
 * `CMD` is started there with NODE_ENV=production on an empty database owned by a role without CREATEDB:
 * migrations at start-up, readiness, the HEALTHCHECK command, a job, and SIGTERM. The Dockerfile's other
 * lines that matter (base image, USER, ENV, EXPOSE) are asserted, so the file and this test cannot drift apart
 * silently. The only differences from a real build: the Node version here (20, the image's is 24), the
 * build runs as this machine's user, and `npm ci` also gets `--prefer-offline`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import t from 'tap'
import { testDatabase } from '../helpers/database.js'
import { GATEWAY_NODE_FLAGS } from '../../bench/gateway-process.js'
import { SANDBOX_CREDENTIALS, startDrchronoSimulator } from '../../src/upstreams/drchrono/simulator/index.js'

// npm ci of the whole tree (about a minute on two busy cores), tsc, and two gateway starts.
t.setTimeout(300_000)

const projectRoot = fileURLToPath(new URL('../..', import.meta.url))
// Production refuses client keys shorter than 32 characters.
const clientKey = 'deploy-test-key-0123456789abcdef0123'
const publicBaseUrl = 'https://gateway.example.org'

/** The build stage's RUN lines, in order: what this test runs. A change in the Dockerfile must be made here too. */
const BUILD_STEPS = [
  'npm ci --ignore-scripts --no-audit --no-fund',
  'npm run build',
  'npm prune --omit=dev --omit=optional',
]
/** What the runtime stage takes from the build stage (relative to WORKDIR). */
const RUNTIME_FILES = ['package.json', 'node_modules', 'dist', 'prisma']

// ---------------------------------------------------------------------------------------------------------------
// The Dockerfile, read as Docker reads it (continuation lines joined, comments dropped), split into stages.

interface Instruction { keyword: string, args: string }
interface Stage { name: string | null, from: string, instructions: Instruction[] }

function parseDockerfile (text: string): { args: Record<string, string>, stages: Stage[] } {
  const logical: string[] = []
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (pending === '' && (line === '' || line.startsWith('#'))) continue
    if (line.startsWith('#')) continue // a comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' '
      continue
    }
    logical.push((pending + line).trim())
    pending = ''
  }
  const args: Record<string, string> = {}
  const stages: Stage[] = []
  for (const line of logical) {
    const [, keyword = '', rest = ''] = /^(\S+)\s*(.*)$/s.exec(line) ?? []
    const instruction = { keyword: keyword.toUpperCase(), args: rest.replace(/\s+/g, ' ').trim() }
    if (instruction.keyword === 'FROM') {
      const [, image = '', name = null] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args) ?? []
      stages.push({ name, from: image.replace(/\$\{(\w+)\}/g, (_, v: string) => args[v] ?? ''), instructions: [] })
    } else if (stages.length === 0) {
      if (instruction.keyword === 'ARG') {
        const [name = '', value = ''] = instruction.args.split('=')
        args[name] = value
      }
    } else {
      stages.at(-1)!.instructions.push(instruction)
    }
  }
  return { args, stages }
}

const all = (stage: Stage, keyword: string) => stage.instructions.filter(i => i.keyword === keyword).map(i => i.args)

/** A `COPY` line's flags and paths. */
function parseCopy (args: string): { from: string | null, sources: string[], dest: string } {
  const words = args.split(' ')
  let from: string | null = null
  const paths: string[] = []
  for (const word of words) {
    if (word.startsWith('--from=')) from = word.slice('--from='.length)
    else if (!word.startsWith('--')) paths.push(word)
  }
  return { from, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' }
}

// ---------------------------------------------------------------------------------------------------------------
// The build context: the project's files that git does not ignore (tracked or new), less .dockerignore'd ones.

/** .dockerignore patterns as Docker applies them: from the context root, a match on a folder covers its content. */
function dockerignoreMatcher (text: string): (path: string) => boolean {
  const patterns = text.split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  const unsupported = patterns.filter(p => p.startsWith('!') || p.includes('**') || p.includes('?') || p.includes('['))
  if (unsupported.length > 0) throw new Error(`.dockerignore syntax this test does not apply: ${unsupported.join(', ')}`)
  const regexes = patterns.map(p => new RegExp('^' + p.replace(/^\/+|\/+$/g, '').replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*') + '(/|$)'))
  return path => regexes.some(r => r.test(path))
}

async function buildContext (into: string): Promise<string[]> {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: projectRoot, encoding: 'utf8' })
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`)
  const ignored = dockerignoreMatcher(await readFile(join(projectRoot, '.dockerignore'), 'utf8'))
  // --cached also lists files deleted in the working tree; the context has what is on disk.
  const files = listed.stdout.split('\0').filter(f => f !== '' && !ignored(f) && existsSync(join(projectRoot, f)))
  for (const file of files) {
    await mkdir(dirname(join(into, file)), { recursive: true })
    await copyFile(join(projectRoot, file), join(into, file))
  }
  return files
}

// ---------------------------------------------------------------------------------------------------------------
// Processes.

/** The environment of a build step: this one's, less what `npm test` and tap put in it. */
function buildEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|TAP|NODE_ENV$|NODE_OPTIONS$|TEST_DATABASE_URL$|DATABASE_URL$)/.test(key)) continue
    env[key] = value
  }
  return env
}

async function run (command: string, cwd: string): Promise<{ code: number | null, output: string, ms: number }> {
  const started = Date.now()
  const child = spawn('/bin/sh', ['-c', command], { cwd, env: buildEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, output, ms: Date.now() - started }
}

interface TestLike { teardown (fn: () => unknown): void }

interface Gateway {
  child: ChildProcess
  url: string
  port: number
  logs: Array<Record<string, unknown>>
  exited: Promise<[number | null, NodeJS.Signals | null]>
}

/** The runtime stage's CMD in `cwd`, with a container's sort of environment (nothing inherited but PATH). */
function startCmd (t: TestLike, cmd: string[], cwd: string, env: Record<string, string>): { child: ChildProcess, exited: Gateway['exited'], stdout: () => string, stderr: () => string, logs: Gateway['logs'], ready: Promise<number> } {
  const [program, ...args] = cmd
  // The image's `node` is Node 24; here it is the Node that runs the tests.
  const child = spawn(program === 'node' ? process.execPath : program!, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = once(child, 'exit') as Gateway['exited']
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  let stdout = ''
  let stderr = ''
  const logs: Gateway['logs'] = []
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const ready = new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      stdout += line + '\n'
      try {
        const entry = JSON.parse(line) as Record<string, unknown>
        logs.push(entry)
        const match = /^bulk-gateway ready: API docs at http:\/\/localhost:(\d+)\/docs$/.exec(String(entry.msg))
        if (match !== null) resolve(Number(match[1]))
      } catch { /* not a log line */ }
    })
    void exited.then(([code, signal]) => reject(new Error(`exited (${code ?? signal}) before it was ready:\n${stderr}\n${stdout.slice(-4000)}`)))
  })
  ready.catch(() => {})
  return { child, exited, stdout: () => stdout, stderr: () => stderr, logs, ready }
}

async function startGateway (t: TestLike, cmd: string[], cwd: string, env: Record<string, string>): Promise<Gateway> {
  const started = startCmd(t, cmd, cwd, env)
  const port = await started.ready
  return { child: started.child, exited: started.exited, logs: started.logs, port, url: `http://127.0.0.1:${port}` }
}

function api (gw: Gateway, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers)
  headers.set('authorization', `Bearer ${clientKey}`)
  if (init.body !== undefined) headers.set('content-type', 'application/json')
  return fetch(gw.url + path, { ...init, headers })
}

type Job = { id: string, status: string, error: { code: string } | null, progress: { records: number } }

async function waitForJob (gw: Gateway, id: string, done: (job: Job) => boolean, timeoutMs = 60_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const job = await (await api(gw, `/jobs/${id}`)).json() as Job
    if (done(job) || Date.now() > deadline) return job
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

/**
 * An empty database owned by a role that is neither superuser nor CREATEDB, as a production DATABASE_URL would
 * be: the gateway must migrate it from nothing with the production dependencies. Dropped at teardown.
 */
async function applicationDatabase (t: TestLike): Promise<string> {
  const adminUrl = await testDatabase(t) // a superuser URL on the test server (the database itself is unused)
  const name = `bg_deploy_${randomBytes(5).toString('hex')}`
  const password = randomBytes(12).toString('hex')
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: adminUrl })
    await client.connect()
    try { await client.query(sql) } finally { await client.end() }
  }
  await admin(`CREATE ROLE "${name}" LOGIN PASSWORD '${password}' NOSUPERUSER NOCREATEDB NOCREATEROLE`)
  await admin(`CREATE DATABASE "${name}" OWNER "${name}"`)
  t.teardown(async () => {
    await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    await admin(`DROP ROLE IF EXISTS "${name}"`)
  })
  const url = new URL(adminUrl)
  url.username = name
  url.password = password
  url.pathname = `/${name}`
  return url.toString()
}

// ---------------------------------------------------------------------------------------------------------------

const dockerfile = parseDockerfile(await readFile(join(projectRoot, 'Dockerfile'), 'utf8'))
const buildStage = dockerfile.stages.find(s => s.name === 'build')
const runtimeStage = dockerfile.stages.at(-1)

t.test('the Dockerfile runs what this test runs', async t => {
  t.equal(dockerfile.stages.length, 2, 'two stages: build and runtime')
  for (const stage of dockerfile.stages) {
    t.match(stage.from, /^node:24\.\d+\.\d+-bookworm-slim$/, `${stage.name ?? 'runtime'} stage: Node 24 LTS, slim, pinned tag`)
  }
  if (buildStage === undefined || runtimeStage === undefined || buildStage === runtimeStage) {
    t.fail('a stage named build and a final stage')
    return
  }
  t.same(all(buildStage, 'WORKDIR'), ['/app'], 'build stage: WORKDIR /app')
  t.same(all(buildStage, 'RUN'), BUILD_STEPS, 'build stage: npm ci, build, prune (the commands this test runs)')
  t.same(all(buildStage, 'COPY'), ['package.json package-lock.json ./', '. .'], 'build stage: lock file first (layer cache), then the context')

  t.same(all(runtimeStage, 'RUN'), [], 'runtime stage: no commands of its own')
  t.same(all(runtimeStage, 'WORKDIR'), ['/app'], 'runtime stage: WORKDIR /app')
  const copies = all(runtimeStage, 'COPY').map(parseCopy)
  t.same(copies.map(c => c.from), RUNTIME_FILES.map(() => 'build'), 'runtime stage: only copies from the build stage')
  t.same(copies.map(c => c.sources), RUNTIME_FILES.map(f => [`/app/${f}`]), 'from the build stage\'s /app')
  t.same(copies.map(c => c.dest.replace(/^\.\//, '')), RUNTIME_FILES, 'package.json, production node_modules, dist, prisma (migrations)')
  t.same(all(runtimeStage, 'ENV'), ['NODE_ENV=production'], 'ENV NODE_ENV=production')
  t.same(all(runtimeStage, 'USER'), ['node'], 'not root')
  t.same(all(runtimeStage, 'EXPOSE'), ['3000'], 'EXPOSE 3000')
  t.same(JSON.parse(all(runtimeStage, 'CMD')[0] ?? 'null'), ['node', ...GATEWAY_NODE_FLAGS, 'dist/server.js'], 'CMD in exec form: SIGTERM reaches node; the node flags the bench measures')
  const pkg = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  t.equal(pkg.scripts.start, ['node', ...GATEWAY_NODE_FLAGS, 'dist/server.js'].join(' '), 'npm start runs the gateway as the image does')
  const healthcheck = all(runtimeStage, 'HEALTHCHECK')[0] ?? ''
  t.match(healthcheck, /^(--\S+ )*CMD \[/, 'HEALTHCHECK in exec form')
  t.match(healthcheck, /\/health\/ready/, 'HEALTHCHECK probes /health/ready')
  const dockerignore = await readFile(join(projectRoot, '.dockerignore'), 'utf8')
  for (const entry of ['node_modules', 'dist', '.data', '.git', 'src/generated']) {
    t.ok(dockerignore.split('\n').includes(entry), `.dockerignore leaves out ${entry}`)
  }
})

t.test('the build stage commands and the runtime stage, outside a container', async t => {
  if (buildStage === undefined || runtimeStage === undefined) {
    t.fail('no stages')
    return
  }
  const work = await mkdtemp(join(tmpdir(), 'bg-deploy-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const build = join(work, 'build') // the build stage's /app
  const app = join(work, 'app') // the runtime stage's /app

  const files = await buildContext(build)
  t.ok(files.includes('package-lock.json') && files.includes('src/server.ts'), `build context: ${files.length} files`)
  t.notOk(files.some(f => f.startsWith('node_modules/') || f.startsWith('src/generated/') || f.startsWith('.data/')), 'nothing installed or generated is copied')

  for (const step of all(buildStage, 'RUN')) {
    const command = step.replace(/^npm ci\b/, 'npm ci --prefer-offline')
    const result = await run(command, build)
    t.equal(result.code, 0, `${command} (${(result.ms / 1000).toFixed(1)} s)`, { output: result.output.slice(-4000) })
    if (result.code !== 0) return
  }

  // devDependencies gone, every dependency there: the prune left a production install.
  const pkg = JSON.parse(await readFile(join(build, 'package.json'), 'utf8')) as { dependencies: Record<string, string>, devDependencies: Record<string, string> }
  const lock = JSON.parse(await readFile(join(build, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean, devOptional?: boolean }> }
  const present = (name: string) => existsSync(join(build, 'node_modules', name, 'package.json'))
  // A devDependency that a dependency needs too (@types/pg and @types/node, dependencies of @prisma/adapter-pg)
  // is not flagged dev in the lock file and stays; every other one must be gone.
  const devOnly = Object.keys(pkg.devDependencies).filter(name => {
    const entry = lock.packages[`node_modules/${name}`]
    return entry?.dev === true || entry?.devOptional === true
  })
  t.ok(['typescript', 'tap', 'tsx', 'prisma'].every(name => devOnly.includes(name)), 'typescript, tap, tsx and prisma are development-only')
  t.same(devOnly.filter(present), [], `no development-only package is installed (${devOnly.join(', ')})`)
  t.same(Object.keys(pkg.dependencies).filter(name => !present(name)), [], 'every dependency is installed')
  // @prisma/client names the CLI and typescript as optional peers: --omit=dev alone would keep them.
  t.notOk(present('@prisma/studio-core') || present('@prisma/engines'), 'nothing of the Prisma CLI is left')
  t.ok(existsSync(join(build, 'dist/server.js')), 'dist/server.js built')
  t.ok(existsSync(join(build, 'dist/generated/prisma/client.js')), 'the generated Prisma client is compiled into dist/')

  // The runtime stage: nothing but what its COPY lines take.
  await mkdir(app)
  for (const copy of all(runtimeStage, 'COPY').map(parseCopy)) {
    await rename(join(build, copy.sources[0]!.replace(/^\/app\//, '')), join(app, copy.dest))
  }
  const cmd = JSON.parse(all(runtimeStage, 'CMD')[0]!) as string[]
  const databaseUrl = await applicationDatabase(t)
  const env = (extra: Record<string, string>): Record<string, string> => ({
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: publicBaseUrl,
    ...extra,
  })

  await t.test('production without GATEWAY_API_KEYS: refused at start, naming the variable', async t => {
    const refused = startCmd(t, cmd, app, env({ SANDBOX: 'true' }))
    const [code] = await refused.exited
    t.not(code, 0, 'exits non-zero')
    t.match(refused.stderr(), /GATEWAY_API_KEYS/, 'the message names GATEWAY_API_KEYS')
    t.match(refused.stderr(), /SANDBOX: true is refused when NODE_ENV=production/, 'and SANDBOX, in the same message')
    t.equal(refused.logs.length, 0, 'before logging or touching the database')
  })

  await t.test('production refuses a short key, TRUST_PROXY=true and a missing PUBLIC_BASE_URL, naming each', async t => {
    const { PUBLIC_BASE_URL: _, ...withoutUrl } = env({ GATEWAY_API_KEYS: 'app:only-24-characters-ok', TRUST_PROXY: 'true' })
    const refused = startCmd(t, cmd, app, withoutUrl)
    const [code] = await refused.exited
    t.not(code, 0, 'exits non-zero')
    t.match(refused.stderr(), /GATEWAY_API_KEYS: the key of client "app" is shorter than 32 characters/)
    t.notMatch(refused.stderr(), /only-24-characters-ok/, 'without printing the key')
    t.match(refused.stderr(), /TRUST_PROXY: true is refused/)
    t.match(refused.stderr(), /PUBLIC_BASE_URL: required when NODE_ENV=production/)
    t.equal(refused.logs.length, 0, 'before logging or touching the database')
  })

  await t.test('production with keys and a configured upstream: migrates, serves, runs a job, stops on SIGTERM', async t => {
    // The simulators never run in production: DrChrono is configured, and pointed at one this test starts (as the
    // sandbox served it: slow enough that a job is still running when SIGTERM comes).
    const drchrono = await startDrchronoSimulator({ inProgressPolls: 2, generationMs: 1500, recordCount: { appointments: 5000 }, maxRequestsPerSecond: 10 })
    t.teardown(() => drchrono.close())
    const gw = await startGateway(t, cmd, app, env({
      GATEWAY_API_KEYS: `app:${clientKey}`, UPSTREAMS: 'drchrono', DRCHRONO_BASE_URL: drchrono.url, DRCHRONO_ACCESS_TOKEN: SANDBOX_CREDENTIALS.accessToken,
    }))
    t.ok(gw.logs.some(l => l.msg === 'migrations applied'), 'migrations applied at start-up by the production install (wasm engine)')
    t.notOk(gw.logs.some(l => /OPEN ACCESS/.test(String(l.msg))), 'no open-access warning')

    const ready = await fetch(`${gw.url}/health/ready`)
    t.equal(ready.status, 200, 'GET /health/ready')
    t.same(await ready.json(), { status: 'ok', database: 'ok', migrations: 'applied' }, 'database reachable, migrations applied')

    // The image's HEALTHCHECK command, as Docker would run it in the container (PORT from its environment).
    const healthcheck = JSON.parse(all(runtimeStage, 'HEALTHCHECK')[0]!.replace(/^(--\S+ )*CMD /, '')) as string[]
    const probe = spawnSync(healthcheck[0] === 'node' ? process.execPath : healthcheck[0]!, healthcheck.slice(1), { env: { PATH: process.env.PATH ?? '', PORT: String(gw.port) }, timeout: 10_000 })
    t.equal(probe.status, 0, 'the HEALTHCHECK command passes')

    t.equal((await fetch(`${gw.url}/jobs`)).status, 401, 'a client key is required')
    const created = await api(gw, '/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'appointments', params: { since: '2024-02-01' } }) })
    t.equal(created.status, 202, 'POST /jobs with the client key')
    const job = await created.json() as Job
    t.equal(created.headers.get('location'), `${publicBaseUrl}/jobs/${job.id}`, 'Location is built from PUBLIC_BASE_URL, not from the request')
    const done = await waitForJob(gw, job.id, j => !['queued', 'running'].includes(j.status))
    t.equal(done.status, 'completed', `the job completes (${done.progress.records} records)`, { error: done.error })
    const results = await api(gw, `/jobs/${job.id}/results?limit=5`)
    t.equal(results.status, 200, 'its results are served')

    const second = await api(gw, '/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'appointments', params: { since: '2024-01-01' } }) })
    t.equal(second.status, 202, 'a second job')
    const secondId = (await second.json() as Job).id
    const running = await waitForJob(gw, secondId, j => j.status !== 'queued', 15_000)
    t.equal(running.status, 'running', 'running when SIGTERM comes')
    const stopping = Date.now()
    gw.child.kill('SIGTERM')
    const [code, signal] = await gw.exited
    const ms = Date.now() - stopping
    t.equal(code, 0, 'SIGTERM: exit code 0', { signal, lastLogs: gw.logs.slice(-15).map(l => l.msg) })
    t.ok(ms < 10_000, `stopped in ${ms} ms`)
    t.ok(gw.logs.some(l => /shutting down/.test(String(l.msg))), 'logged its shutdown')
    const db = new pg.Client({ connectionString: databaseUrl })
    await db.connect()
    const { rows: [row] } = await db.query<{ status: string, lease_owner: string | null }>('SELECT status, lease_owner FROM jobs WHERE id = $1', [secondId])
    await db.end()
    t.same(row, { status: 'queued', lease_owner: null }, 'the running job was released (queued again, no lease) for another replica')
  })

  await t.test('production (no SANDBOX) refuses to start with no upstream configured, or one exposed without it', async t => {
    const none = startCmd(t, cmd, app, env({ GATEWAY_API_KEYS: `app:${clientKey}` }))
    const [code] = await none.exited
    t.not(code, 0, 'exits non-zero')
    t.match(none.stderr(), /no upstream is configured[^\n]*drchrono: [^;]*DRCHRONO_ACCESS_TOKEN/, 'names each upstream and its variables')
    t.match(none.stderr(), /UPSTREAMS/, 'and how to choose the upstreams served')
    t.equal(none.logs.length, 0, 'before logging or touching the database')
    const unconfigured = startCmd(t, cmd, app, env({ GATEWAY_API_KEYS: `app:${clientKey}`, UPSTREAMS: 'drchrono' }))
    t.not((await unconfigured.exited)[0], 0, 'an exposed upstream without its configuration: exits non-zero')
    t.match(unconfigured.stderr(), /drchrono: exposed but not configured \(set [^)]*DRCHRONO_ACCESS_TOKEN/, 'names the upstream and its variables')
    t.equal(unconfigured.logs.length, 0, 'before logging or touching the database')
  })

  await t.test('production with UPSTREAMS=drchrono configured: only drchrono is served', async t => {
    const gw = await startGateway(t, cmd, app, env({
      GATEWAY_API_KEYS: `app:${clientKey}`,
      UPSTREAMS: 'drchrono',
      DRCHRONO_ACCESS_TOKEN: 'not-a-real-token',
      DRCHRONO_BASE_URL: 'http://127.0.0.1:9',
    }))
    t.notOk(gw.logs.some(l => l.msg === 'migrations applied'), 'a restart finds the migrations applied')
    const { data: list } = await (await api(gw, '/upstreams')).json() as { data: Array<{ name: string, mode: string }> }
    t.same(list.map(u => [u.name, u.mode]), [['drchrono', 'live']], 'GET /upstreams lists drchrono alone, live')
    const other = await api(gw, '/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'cliniko', resource: 'patients' }) })
    t.equal(other.status, 400, 'a job for an upstream not exposed is refused')
    t.match(await other.json(), { errors: [{ in: 'body', pointer: '/upstream', detail: /not enabled on this gateway/ }] }, 'naming the field')
    t.equal((await fetch(`${gw.url}/sandbox/drchrono/api/appointments_list`, { method: 'POST' })).status, 404, 'no simulator is mounted')
    gw.child.kill('SIGTERM')
    t.equal((await gw.exited)[0], 0, 'SIGTERM: exit code 0')
  })
})
