/**
 * `bulk-gateway results`, run as users run it (bin/bulk-gateway.js in a child process) against a real gateway
 * over loopback HTTP: the records written byte for byte as the gateway's NDJSON stream, to stdout and to --out,
 * and a read cut off mid-way resumed from its saved cursor (--out) or from the cursor it printed (stdout).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { buildCli, completedJob as submitted, explain, out } from '../helpers/cli.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { clientKeys, startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const recordCount = { appointments: 1234, patients: 310 }

// Each run of the CLI is a node process: a fraction of a second on an idle machine, seconds on a busy one.
t.setTimeout(300_000)

const sim = await startDrchrono(t, { recordCount })
const gw = await startGateway(t, { env: drchronoEnv(sim) })
const cli = await buildCli(t, { url: gw.url, key: clientKeys.alpha })

/** The job's records as the gateway streams them: what `results` must write, byte for byte. */
async function ndjsonOf (id: string): Promise<Buffer> {
  const res = await gw.request(`/jobs/${id}/results`, { headers: { accept: 'application/x-ndjson' } })
  if (res.status !== 200) throw new Error(`NDJSON answered ${res.status}`)
  return Buffer.from(await res.arrayBuffer())
}

/** Submits through the CLI and waits for the job to end; returns its id. */
const completedJob = async (resource = 'patients', params: string[] = []): Promise<string> =>
  await submitted(cli, async id => await waitForJob(gw, id), resource, params)

/** A proxy to the gateway that cuts the connection of every results request after the first `pages`. */
async function cuttingProxy (target: TestGateway, pages: number): Promise<string> {
  let seen = 0
  const server: Server = createServer((req, res) => {
    if (req.url?.includes('/results') === true && ++seen > pages) {
      req.socket.destroy()
      return
    }
    void fetch(target.url + (req.url ?? '/'), { method: req.method, headers: { authorization: req.headers.authorization ?? '', accept: req.headers.accept ?? '*/*' } })
      .then(async r => {
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' })
        res.end(Buffer.from(await r.arrayBuffer()))
      })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

t.test('results: to stdout and to --out, byte for byte the gateway\'s NDJSON', async t => {
  const id = await completedJob('appointments', ['verbose:=true'])
  const expected = await ndjsonOf(id)
  // Archived appointments are left out by default: fewer records than the simulator holds.
  const count = expected.toString().split('\n').length - 1
  t.ok(count > 1000, `${count} records, over several pages`)

  const stdout = await cli.run(['results', id])
  t.equal(stdout.code, 0, explain(stdout).stderr)
  t.ok(stdout.stdout.equals(expected), 'stdout: the NDJSON bytes')
  const small = await cli.run(['results', id, '--limit', '97'])
  t.ok(small.stdout.equals(expected), 'pages of 97 records: the same bytes')

  // Not spawnSync: the gateway runs in this process and must go on answering.
  const pipe = spawn('bash', ['--norc', '--noprofile', '-c', `node '${cli.bin}' results ${id} --limit 10 | head -n 3; exit \${PIPESTATUS[0]}`], { env: { PATH: process.env.PATH, ...cli.env } })
  let piped = ''
  let pipeErr = ''
  pipe.stdout.on('data', (d: Buffer) => { piped += d.toString() })
  pipe.stderr.on('data', (d: Buffer) => { pipeErr += d.toString() })
  const [pipeCode] = await once(pipe, 'close')
  t.equal(pipeCode, 0, 'a reader that stops early (| head): exit 0', { stderr: pipeErr })
  t.equal(pipeErr, '', 'and nothing said')
  t.equal(piped, expected.toString().split('\n').slice(0, 3).join('\n') + '\n')

  const dir = t.testdir({})
  const file = join(dir, 'records.ndjson')
  const written = await cli.run(['results', id, '--out', file, '--json'])
  t.equal(written.code, 0, explain(written).stderr)
  t.ok((await readFile(file)).equals(expected), '--out: the NDJSON bytes')
  t.same(JSON.parse(out(written)), { job: id, out: file, records: count, bytes: expected.length }, '--json: a summary')
  await t.rejects(stat(`${file}.part`), 'no .part left')
  await t.rejects(stat(`${file}.part.json`), 'no state left')
  const plain = await cli.run(['results', id, '--out', file])
  t.match(plain.stderr, `wrote ${count} records (${expected.length} bytes) to ${file}`)
  t.equal(out(plain), '', 'nothing on stdout without --json')
})

t.test('an interrupted results --out resumes from its cursor; stdout says which --cursor continues', async t => {
  const id = await completedJob('appointments')
  const expected = await ndjsonOf(id)
  const dir = t.testdir({})
  const file = join(dir, 'records.ndjson')
  const proxy = await cuttingProxy(gw, 3)

  const cut = await cli.run(['results', id, '--out', file, '--limit', '100'], { env: { BULK_GATEWAY_URL: proxy } })
  t.equal(cut.code, 3, 'the connection cut mid-way: exit 3', explain(cut))
  t.match(cut.stderr, /stopped after 300 records; .*records\.ndjson\.part holds them: run the same command again to resume/)
  await t.rejects(stat(file), 'the file is not there: only a whole set is renamed to it')
  const state = JSON.parse(await readFile(`${file}.part.json`, 'utf8'))
  t.match(state, { job: id, records: 300, cursor: String })
  t.ok((await readFile(`${file}.part`)).equals(expected.subarray(0, state.bytes)), '.part holds the first 300 records exactly')
  // A page the process wrote but did not record (it died between the two): dropped on resume.
  await appendFile(`${file}.part`, '{"half": "a record')

  const resumed = await cli.run(['results', id, '--out', file, '--limit', '100'])
  t.equal(resumed.code, 0, explain(resumed).stderr)
  t.match(resumed.stderr, /resuming .*after 300 records/)
  t.ok((await readFile(file)).equals(expected), 'the resumed file: the NDJSON bytes')
  await t.rejects(stat(`${file}.part.json`), 'the state is gone')

  // The .part of another job is not taken for this one's.
  await writeFile(`${file}.part`, '')
  await writeFile(`${file}.part.json`, JSON.stringify({ ...state, job: '00000000-0000-0000-0000-000000000000' }))
  const other = await cli.run(['results', id, '--out', file])
  t.equal(other.code, 2, 'a .part of another job: exit 2')
  t.match(other.stderr, /holds results of job 00000000/)

  const cutStdout = await cli.run(['results', id, '--limit', '100'], { env: { BULK_GATEWAY_URL: await cuttingProxy(gw, 2) } })
  t.equal(cutStdout.code, 3)
  const cursor = /--cursor (\S+)/.exec(cutStdout.stderr)?.[1]
  t.ok(cursor, 'stdout: the cursor that continues the read is printed', explain(cutStdout))
  const rest = await cli.run(['results', id, '--cursor', cursor!])
  t.equal(rest.code, 0)
  t.ok(Buffer.concat([cutStdout.stdout, rest.stdout]).equals(expected), 'what was written, then --cursor: the NDJSON bytes')
})

t.test('a saved state whose records do not add up to the total is never renamed to FILE', async t => {
  const id = await completedJob('patients')
  const expected = await ndjsonOf(id)
  const file = join(t.testdir(), 'short.ndjson')
  // As a read whose last page was written, but that holds fewer records than the job: only the rename would be left.
  const half = expected.subarray(0, expected.indexOf('\n', expected.length / 2) + 1)
  await writeFile(`${file}.part`, half)
  await writeFile(`${file}.part.json`, JSON.stringify({ job: id, cursor: null, bytes: half.length, records: 155, fromStart: true, total: 310 }))
  const short = await cli.run(['results', id, '--out', file])
  t.equal(short.code, 3, 'exit 3', explain(short))
  t.match(short.stderr, /155 records of 310/)
  await t.rejects(stat(file), 'FILE is not there')
  await t.rejects(stat(`${file}.part.json`), 'the state is gone, so the next run reads the job anew')
  const again = await cli.run(['results', id, '--out', file])
  t.equal(again.code, 0, explain(again).stderr)
  t.ok((await readFile(file)).equals(expected), 'read anew: the NDJSON bytes')
})
