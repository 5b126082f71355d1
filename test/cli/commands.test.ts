/**
 * The command line, run as users run it (bin/bulk-gateway.js in a child process, test/helpers/cli.ts), against a
 * real gateway over loopback HTTP with a DrChrono simulator: submit, status, watch, cancel, list, their --json
 * shapes and exit codes. `results` is in results.test.ts, the progress bars on a terminal in watch-terminal.test.ts.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFile, mkdir } from 'node:fs/promises'
import { createServer } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { buildCli, completedJob as submitted, explain, out } from '../helpers/cli.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { clientKeys, startGateway, waitForJob } from '../helpers/gateway.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const recordCount = { appointments: 1234, patients: 310 }

// About sixty runs of the CLI, each a node process: a fraction of a second on an idle machine, seconds on a busy one.
t.setTimeout(420_000)

const sim = await startDrchrono(t, { recordCount })
const gw = await startGateway(t, { env: drchronoEnv(sim) })
const cli = await buildCli(t, { url: gw.url, key: clientKeys.alpha })

/** Submits through the CLI and waits for the job to end; returns its id. */
const completedJob = async (resource = 'patients', params: string[] = []): Promise<string> =>
  await submitted(cli, async id => await waitForJob(gw, id), resource, params)

/** A port nothing listens on. */
async function closedPort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

t.test('--help names the commands, the environment and the exit codes; bad usage exits 2', async t => {
  const help = await cli.run(['--help'])
  t.equal(help.code, 0)
  for (const word of ['submit', 'status', 'watch', 'results', 'cancel', 'list', 'BULK_GATEWAY_URL', 'BULK_GATEWAY_KEY', 'Exit codes']) {
    t.match(out(help), word, `--help mentions ${word}`)
  }
  const results = await cli.run(['results', '--help'])
  t.equal(results.code, 0)
  t.match(out(results), /--out FILE.*FILE\.part.*run the same\s+command again/s, 'results --help says how a read resumes')
  t.match(out(results), /--cursor/)

  const dir = t.testdir({ 'broken.json': '{"upstream": ' })
  const cases: Array<[string, string[], RegExp]> = [
    ['an unknown command', ['frobnicate'], /unknown command/],
    ['an unknown option', ['list', '--colour'], /unknown option/],
    ['a missing id', ['status'], /missing required argument/],
    ['submit without a body', ['submit'], /--body FILE/],
    ['--body and flags at once', ['submit', '--body', '-', '--upstream', 'drchrono'], /not both/],
    ['a --param without =', ['submit', '--upstream', 'drchrono', '--resource', 'patients', '--param', 'since'], /key=value/],
    ['a --param := that is not JSON', ['submit', '--upstream', 'drchrono', '--resource', 'patients', '--param', 'verbose:=yes'], /not JSON/],
    ['a body file that is not there', ['submit', '--body', join(dir, 'nope.json')], /cannot read the body/],
    ['a body that is not JSON', ['submit', '--body', join(dir, 'broken.json')], /is not JSON/],
    ['a page limit out of range', ['results', 'x', '--limit', '5000'], /from 1 to 1000/],
    ['a bad interval', ['watch', 'x', '--interval', '-1'], /positive number/],
  ]
  for (const [what, args, message] of cases) {
    const r = await cli.run(args)
    t.equal(r.code, 2, `${what}: exit 2`, explain(r))
    t.match(r.stderr, message, `${what}: says why`)
  }
  // The bin alone, as on a fresh clone before `npm run build`: it says what to do.
  await mkdir(join(dir, 'bin'))
  await copyFile(cli.bin, join(dir, 'bin/bulk-gateway.js'))
  await copyFile(join(cli.dir, 'package.json'), join(dir, 'package.json'))
  const unbuilt = spawn(process.execPath, [join(dir, 'bin/bulk-gateway.js'), '--help'], { env: { PATH: process.env.PATH } })
  let unbuiltErr = ''
  unbuilt.stderr.on('data', (d: Buffer) => { unbuiltErr += d.toString() })
  const [unbuiltCode] = await once(unbuilt, 'close')
  t.equal(unbuiltCode, 2, 'not built: exit 2')
  t.match(unbuiltErr, /the command line is not built \(.*dist\/cli\/main\.js is missing\)\.\nRun `npm run build`/, 'and how to build it')

  const badUrl = await cli.run(['list'], { env: { BULK_GATEWAY_URL: 'ftp://example.org' } })
  t.equal(badUrl.code, 2, 'a BULK_GATEWAY_URL that is not http(s): exit 2')
})

t.test('submit from a file, from stdin and from flags; --json prints the job view', async t => {
  const body = JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { since: '2024-01-01' } })
  const dir = t.testdir({ 'job.json': body })
  const fromFile = await cli.run(['submit', '--body', join(dir, 'job.json')])
  t.equal(fromFile.code, 0, 'exit 0', explain(fromFile))
  t.match(out(fromFile), /^[0-9a-f-]{36}\n$/, 'prints the job id alone')
  const id = out(fromFile).trim()
  t.match(id, UUID)
  const view = await (await gw.request(`/jobs/${id}`)).json()
  t.same([view.upstream, view.resource, view.params.since], ['drchrono', 'patients', '2024-01-01'], 'the gateway has the job as the file said')

  const fromStdin = await cli.run(['submit', '--body', '-', '--json'], { input: JSON.stringify({ upstream: 'drchrono', resource: 'appointments' }) })
  t.equal(fromStdin.code, 0, explain(fromStdin).stderr)
  const job = JSON.parse(out(fromStdin))
  t.match(job, { id: UUID, upstream: 'drchrono', resource: 'appointments', status: /^(queued|running|completed)$/, progress: { records: Number }, links: { self: `/jobs/${job.id}` } }, '--json: the job view')
  t.equal(out(fromStdin).trimEnd().split('\n').length, 1, 'one line of JSON')

  const fromFlags = await cli.run(['submit', '--json', '--upstream', 'drchrono', '--resource', 'appointments', '--param', 'since=2024-02-01', '--param', 'verbose:=true', '--param', 'page_size:=500'])
  t.equal(fromFlags.code, 0, explain(fromFlags).stderr)
  t.match(JSON.parse(out(fromFlags)).params, { since: '2024-02-01', verbose: true, page_size: 500 }, 'key=value is a string, key:=json a JSON value')

  const again = await cli.run(['submit', '--idempotency-key', 'cli-key-1', '--body', join(dir, 'job.json')])
  const replay = await cli.run(['submit', '--idempotency-key', 'cli-key-1', '--body', join(dir, 'job.json')])
  t.equal(out(replay), out(again), 'the same Idempotency-Key: the same job')
  t.match(replay.stderr, /an existing job/, 'and it says so on stderr')

  const invalid = await cli.run(['submit', '--upstream', 'drchrono', '--resource', 'patients', '--param', 'nope=1'])
  t.equal(invalid.code, 3, 'a body the gateway refuses: exit 3')
  t.match(invalid.stderr, /400 validation_failed: .*\n.*\/params/, 'with the problem\'s code, detail and pointers')
})

t.test('status and watch of a completed job: exit 0; --json is the gateway\'s view', async t => {
  const id = await completedJob('patients')
  const status = await cli.run(['status', id])
  t.equal(status.code, 0)
  t.match(out(status), new RegExp(`id\\s+${id}\\n`))
  t.match(out(status), /status\s+completed\n/)
  t.match(out(status), /progress\s+completed \| 100% \| page 1 of 1, 310 records/)
  const json = await cli.run(['status', id, '--json'])
  t.same(JSON.parse(out(json)), await (await gw.request(`/jobs/${id}`)).json(), 'status --json: the view as GET /jobs/{id} answers it')

  const watched = await cli.run(['watch', id])
  t.equal(watched.code, 0, 'watch of a completed job: exit 0', explain(watched))
  t.match(out(watched), new RegExp(`job ${id} completed: 310 records`), 'the final state')
  t.notOk(out(watched).includes('\u001b['), 'no terminal codes when stdout is not a terminal')

  // A job watched from its submission on: plain lines while it runs, then its end.
  const submitted = await cli.run(['submit', '--upstream', 'drchrono', '--resource', 'appointments', '--param', 'page_size:=250'])
  const live = await cli.run(['watch', out(submitted).trim(), '--interval', '0.1'])
  t.equal(live.code, 0, explain(live).stderr)
  const lines = out(live).trimEnd().split('\n')
  t.match(lines.at(-1), /completed: \d+ records/)
  t.ok(lines.slice(0, -1).every(l => /^(queued|running|completed) \|/.test(l)), 'a plain progress line per change', { lines })

  const watchedJson = await cli.run(['watch', id, '--json'])
  t.equal(watchedJson.code, 0)
  t.match(JSON.parse(out(watchedJson)), { id, status: 'completed' }, 'watch --json: the final view alone')
})

t.test('list: newest first, filters, pages; --json is the gateway\'s page', async t => {
  const json = await cli.run(['list', '--json', '--limit', '100'])
  t.equal(json.code, 0)
  const page = JSON.parse(out(json))
  t.match(page, { data: Array, nextCursor: null })
  const api = await (await gw.request('/jobs?limit=100')).json()
  t.same(page.data.map((j: { id: string }) => j.id), api.data.map((j: { id: string }) => j.id), 'the same jobs, in the same order')

  const human = await cli.run(['list', '--limit', '100'])
  const lines = out(human).trimEnd().split('\n')
  t.same(lines.map(l => l.split(/\s+/)[0]), api.data.map((j: { id: string }) => j.id), 'one line per job, its id first')
  t.match(lines[0], /^\S+ {2}(queued|running|completed)/)

  const completed = JSON.parse(out(await cli.run(['list', '--json', '--status', 'completed'])))
  t.ok(completed.data.length > 0 && completed.data.every((j: { status: string }) => j.status === 'completed'), '--status filters')
  const first = await cli.run(['list', '--limit', '1'])
  t.equal(out(first).trimEnd().split('\n').length, 1)
  const next = /--cursor (\S+)/.exec(first.stderr)?.[1]
  t.ok(next, 'more pages: the next one\'s --cursor is printed on stderr')
  const second = await cli.run(['list', '--limit', '1', '--cursor', next!])
  t.equal(out(second).split(/\s+/)[0], api.data[1].id, '--cursor reads the next page')
  const bad = await cli.run(['list', '--status', 'nope'])
  t.equal(bad.code, 3, 'a status that does not exist: the gateway refuses it, exit 3')
  t.match(bad.stderr, /400 validation_failed/)
})

t.test('a failed job: watch, status and results exit 1 with its error', async t => {
  sim.state.revokeAccessToken()
  t.teardown(() => sim.state.reset())
  const r = await cli.run(['submit', '--upstream', 'drchrono', '--resource', 'patients', '--param', 'since=2023-01-01'])
  const id = out(r).trim()
  const watched = await cli.run(['watch', id, '--interval', '0.2'])
  t.equal(watched.code, 1, 'watch: exit 1', explain(watched))
  t.match(out(watched), new RegExp(`job ${id} failed: upstream_unauthorized \\(upstream status 401\\)`))
  const status = await cli.run(['status', id])
  t.equal(status.code, 1, 'status of a failed job: exit 1')
  t.match(out(status), /error\s+upstream_unauthorized/)
  const results = await cli.run(['results', id])
  t.equal(results.code, 1, 'results of a failed job: exit 1')
  t.match(results.stderr, /409 results_not_ready.*\n.*failed: upstream_unauthorized/)
})

t.test('cancel: the job ends cancelled, watch exits 1, its results are gone', async t => {
  // No workers: the job stays queued until it is cancelled.
  const idle = await startGateway(t, { startWorkers: false })
  const idleCli = { ...cli, run: (args: string[]) => cli.run(args, { env: { BULK_GATEWAY_URL: idle.url } }) }
  const id = out(await idleCli.run(['submit', '--upstream', 'drchrono', '--resource', 'patients'])).trim()
  t.match(id, UUID)

  const interrupted = cli.start(['watch', id, '--interval', '0.1'], { env: { BULK_GATEWAY_URL: idle.url } })
  await once(interrupted.child.stdout!, 'data') // it is watching
  interrupted.child.kill('SIGINT')
  const stopped = await interrupted.done
  t.equal(stopped.code, 130, 'watch interrupted (Ctrl-C): exit 130', explain(stopped))
  t.match(stopped.stderr, /interrupted/)
  const watching = cli.start(['watch', id, '--interval', '0.1'], { env: { BULK_GATEWAY_URL: idle.url } })
  await once(watching.child.stdout!, 'data')
  const cancelled = await idleCli.run(['cancel', id])
  t.equal(cancelled.code, 0, explain(cancelled).stderr)
  t.equal(out(cancelled), `job ${id} cancelled\n`)
  const watched = await watching.done
  t.equal(watched.code, 1, 'watch of a job cancelled meanwhile: exit 1', explain(watched))
  t.match(out(watched), /^queued \|/, 'it was seen queued first')
  t.match(out(watched), new RegExp(`job ${id} cancelled`))
  const json = await idleCli.run(['cancel', id, '--json'])
  t.match(JSON.parse(out(json)), { id, status: 'cancelled' }, 'cancel again: idempotent, --json is the view')
  const results = await idleCli.run(['results', id])
  t.equal(results.code, 1, 'results of a cancelled job: exit 1')
  t.match(results.stderr, /410 results_expired/)
})

t.test('exit 3: the gateway unreachable, a wrong key, an unknown job', async t => {
  const port = await closedPort()
  const unreachable = await cli.run(['status', '00000000-0000-0000-0000-000000000000'], { env: { BULK_GATEWAY_URL: `http://127.0.0.1:${port}` } })
  t.equal(unreachable.code, 3, explain(unreachable).stderr)
  t.match(unreachable.stderr, new RegExp(`cannot reach the gateway at http://127\\.0\\.0\\.1:${port}.*ECONNREFUSED`))

  for (const [what, env] of [['a wrong key', { BULK_GATEWAY_KEY: 'not-a-key-0123456789' }], ['no key', { BULK_GATEWAY_KEY: '' }]] as const) {
    for (const args of [['list'], ['submit', '--upstream', 'drchrono', '--resource', 'patients'], ['results', '00000000-0000-0000-0000-000000000000']]) {
      const r = await cli.run(args, { env })
      t.equal(r.code, 3, `${what}, ${args[0]}: exit 3`, explain(r))
      t.match(r.stderr, /401 unauthorized: /, 'the problem\'s code and detail')
    }
  }
  const missing = await cli.run(['status', '00000000-0000-0000-0000-000000000000'])
  t.equal(missing.code, 3)
  t.match(missing.stderr, /404 job_not_found: /)
})
