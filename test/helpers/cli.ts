/**
 * The command line as users run it: bin/bulk-gateway.js, unchanged, beside a dist/cli/ compiled from src/cli by
 * tsc, in a folder of the test's own (so the repository's dist/ is neither needed nor touched). The compile takes
 * src/cli alone, with rootDir there: an import of another room would fail it, as test/app/layers.test.ts does.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

interface TestLike { teardown (fn: () => unknown): void }

export const projectRoot = fileURLToPath(new URL('../..', import.meta.url))

export interface CliResult { code: number | null, signal: NodeJS.Signals | null, stdout: Buffer, stderr: string }

export interface RunOptions { env?: Record<string, string>, input?: string | Buffer, cwd?: string }

export interface Cli {
  /** The folder holding bin/ and dist/cli/. */
  dir: string
  /** The bin's path. */
  bin: string
  /** Runs `bulk-gateway ...args` and collects its output. */
  run (args: string[], opts?: RunOptions): Promise<CliResult>
  /** The same, with the child process at hand (to signal it) while it runs. */
  start (args: string[], opts?: RunOptions): { child: ChildProcess, done: Promise<CliResult> }
  /** The environment the CLI is run with: BULK_GATEWAY_URL and BULK_GATEWAY_KEY. */
  env: Record<string, string>
}

/** Builds the CLI into a temporary folder and returns a runner pointed at `url` with `key`. */
export async function buildCli (t: TestLike, gateway: { url: string, key?: string }): Promise<Cli> {
  const dir = await mkdtemp(join(tmpdir(), 'bulk-gateway-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'bin'))
  await copyFile(join(projectRoot, 'bin/bulk-gateway.js'), join(dir, 'bin/bulk-gateway.js'))
  await copyFile(join(projectRoot, 'package.json'), join(dir, 'package.json'))
  await symlink(join(projectRoot, 'node_modules'), join(dir, 'node_modules'))
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
    extends: join(projectRoot, 'tsconfig.json'),
    compilerOptions: { rootDir: join(projectRoot, 'src/cli'), outDir: join(dir, 'dist/cli'), sourceMap: false },
    include: [join(projectRoot, 'src/cli')],
  }))
  const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin/tsc')
  const compiled = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' })
  if (compiled.status !== 0) throw new Error(`tsc of src/cli failed: ${compiled.stdout}${compiled.stderr}`)
  const bin = join(dir, 'bin/bulk-gateway.js')
  const env = { BULK_GATEWAY_URL: gateway.url, ...(gateway.key === undefined ? {} : { BULK_GATEWAY_KEY: gateway.key }) }
  const start: Cli['start'] = (args, opts = {}) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: opts.cwd ?? dir,
      env: { PATH: process.env.PATH ?? '', ...env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.stdin.end(opts.input)
    const done = new Promise<CliResult>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr }))
    })
    return { child, done }
  }
  return { dir, bin, env, start, run: (args, opts) => start(args, opts).done }
}

/** A run's stdout as text. */
export const out = (r: CliResult): string => r.stdout.toString('utf8')

/** A run's output, shortened, for an assertion's diagnostics. */
export const explain = (r: CliResult): { stdout: string, stderr: string } => ({ stdout: out(r).slice(0, 2000), stderr: r.stderr.slice(0, 2000) })

/**
 * Submits a DrChrono job through the CLI (`--param` values as given) and waits for it to end with `until`, the
 * gateway's own poll (test/helpers/gateway.ts waitForJob); returns its id once it has completed.
 */
export async function completedJob (
  cli: Cli, until: (id: string) => Promise<{ status: string }>, resource = 'patients', params: string[] = []
): Promise<string> {
  const r = await cli.run(['submit', '--upstream', 'drchrono', '--resource', resource, ...params.flatMap(p => ['--param', p])])
  if (r.code !== 0) throw new Error(`submit exited ${r.code}: ${r.stderr}`)
  const id = out(r).trim()
  const job = await until(id)
  if (job.status !== 'completed') throw new Error(`job ${id} ${job.status}`)
  return id
}
