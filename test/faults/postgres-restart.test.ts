/**
 * Fault campaign, the database restarts mid-job: a PostgreSQL of this test's own (embedded, in its own temp
 * folder) is stopped while the gateway process runs jobs, and started again on the same data. The gateway
 * must stay up, answer readiness 503 while the database is gone, reconnect, and complete every job exactly.
 *
 * startEmbeddedPostgres takes a free port on each start, so the gateway reaches the database through a small
 * TCP forwarder on a fixed port (as a service address or a pooler would stay put in production): it refuses
 * connections while the database is down and forwards to the new server once it is back. The restart itself
 * is real: the server process stops, every connection is closed by it, and a new server starts on the data.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.js'
import { spawnGateway } from '../helpers/process.js'
import { CAMPAIGN_SEED, Tally, isTerminal, settle } from './campaign.js'
import { jobReader, judgeJob, startReadUpstreams, submitJob } from './read-jobs.js'

/** A fixed loopback port that forwards to whichever port the database listens on now; closed while it is down. */
class StableAddress {
  #server: Server | null = null
  #sockets = new Set<Socket>()
  port = 0

  async open (targetPort: number): Promise<void> {
    const server = createServer(client => {
      const upstream = createConnection({ host: '127.0.0.1', port: targetPort })
      for (const s of [client, upstream]) {
        this.#sockets.add(s)
        s.on('close', () => this.#sockets.delete(s))
        s.on('error', () => { client.destroy(); upstream.destroy() })
      }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    this.port = (server.address() as { port: number }).port
    this.#server = server
  }

  /** Stops accepting (connecting is refused, as to a stopped server) and drops what is still open. */
  async close (): Promise<void> {
    const server = this.#server
    this.#server = null
    for (const s of this.#sockets) s.destroy()
    if (server !== null) await new Promise<void>(resolve => server.close(() => resolve()))
  }
}

t.test('PostgreSQL restarted mid-job: the gateway reconnects and every job completes exactly', async t => {
  t.comment(`seed ${CAMPAIGN_SEED}`)
  const tally = new Tally('postgres-restart')
  const dataDir = await mkdtemp(join(tmpdir(), 'bg-faults-pg-'))
  const quiet = pino({ level: 'silent' })
  let pg: EmbeddedPostgres = await startEmbeddedPostgres({ dataDir, log: quiet })
  const address = new StableAddress()
  t.teardown(async () => {
    await address.close()
    await pg.stop()
    await rm(dataDir, { recursive: true, force: true })
  })
  await address.open(Number(new URL(pg.url).port))
  const via = (url: string) => { const u = new URL(url); u.port = String(address.port); return u.toString() }

  const upstreams = await startReadUpstreams(t)
  const env = { ...upstreams.env, DATABASE_URL: via(pg.url), LEASE_SECONDS: '3', WORKER_CONCURRENCY: '6', JOB_MAX_ATTEMPTS: '20' }
  const gw = await spawnGateway(t, env)
  let stderr = ''
  gw.child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<string>(resolve => gw.child.once('exit', (code, signal) => resolve(`exit code ${code}, signal ${signal}`)))
  /** Why the gateway is gone, if it is: its exit, its last words on stderr, and its last log lines. */
  const obituary = async () => gw.child.exitCode === null && gw.child.signalCode === null
    ? 'still running'
    : `${await exited}; stderr: ${stderr.slice(-1500)}; last logs: ${gw.logs.slice(-5).map(l => `${String(l.msg)} ${JSON.stringify(l.err ?? '')}`).join(' | ')}`
  const jobs = Array.from({ length: 8 }, (_, i) => upstreams.job(40 + i))
  const ids: string[] = []
  for (const job of jobs) ids.push(await submitJob(gw, job))
  const read = jobReader(() => gw)

  // Stop the database once some jobs have stored pages and others have not finished.
  for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
    const views = await Promise.all(ids.map(read))
    if (views.some(v => v.progress.pagesDone > 0 && !isTerminal(v))) break
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const before = await Promise.all(ids.map(read))
  const unfinished = before.filter(v => !isTerminal(v)).length
  await pg.stop()
  await address.close()
  t.comment(`database stopped with ${unfinished} of ${ids.length} jobs unfinished`)

  // Down for a few seconds: longer than a lease, so the jobs' leases run out while nobody can renew them.
  await new Promise(resolve => setTimeout(resolve, 4000))
  const down = await fetch(`${gw.url}/health/ready`).catch(() => null)
  t.equal(down?.status, 503, 'readiness says the database is gone')
  t.equal(await obituary(), 'still running', 'the gateway process is still up while the database is down')

  pg = await startEmbeddedPostgres({ dataDir, log: quiet })
  await address.open(Number(new URL(pg.url).port))
  t.comment('database started again on the same data')

  let ready = 0
  for (const deadline = Date.now() + 30_000; ready !== 200 && Date.now() < deadline;) {
    ready = (await fetch(`${gw.url}/health/ready`)).status
    if (ready !== 200) await new Promise(resolve => setTimeout(resolve, 200))
  }
  t.equal(ready, 200, 'readiness recovers once the database is back')

  const done = await Promise.all(ids.map(id => settle(read, id, 120_000)))
  for (const [i, id] of ids.entries()) {
    await judgeJob(tally, via(pg.url), `job ${i} (${jobs[i]?.body.upstream}, ${before[i]?.status} at the stop)`, id, done[i] ?? null, jobs[i]?.expected ?? [])
  }
  t.equal(await obituary(), 'still running', 'the gateway never crashed')
  const errors = gw.logs.filter(l => l.level === 60).map(l => String(l.msg))
  t.same(errors, [], 'nothing fatal was logged')
  await gw.kill('SIGTERM')
  t.equal(gw.child.exitCode, 0, 'and it still shuts down cleanly')
  tally.report(t)
})
