/**
 * Fault campaign, process faults: the gateway process is SIGKILLed at seeded random points while 20 jobs run,
 * and started again each time. Every job must resume from its checkpoint and complete with exactly the
 * simulator's records: none lost, none twice. (replica-takeover.test.ts kills one of two replicas.)
 *
 * test/e2e/crash-and-replicas.test.ts covers one job killed once, two replicas that both live, and SIGTERM;
 * this adds many jobs of three upstreams and repeated kills at random moments.
 */
import t from 'tap'
import { mulberry32 } from '../../src/upstreams/simulator-kit/seeded-random.js'
import { testDatabase, sql } from '../helpers/database.js'
import { spawnGateway } from '../helpers/process.js'
import { CAMPAIGN_SEED, Tally, isTerminal, settle, storedRecords } from './campaign.js'
import { jobReader, judgeJob, startReadUpstreams, submitJob } from './read-jobs.js'

const tally = new Tally('process-kill')
const HANG_AFTER_MS = 120_000

t.test('SIGKILL at random points of 20 jobs, restart each time: every job resumes and completes exactly', async t => {
  const random = mulberry32(CAMPAIGN_SEED)
  t.comment(`seed ${CAMPAIGN_SEED}`)
  const upstreams = await startReadUpstreams(t)
  const databaseUrl = await testDatabase(t)
  // A short lease, so a killed gateway's jobs are free again soon; attempts enough for every kill.
  const env = { ...upstreams.env, DATABASE_URL: databaseUrl, LEASE_SECONDS: '2', WORKER_CONCURRENCY: '8', JOB_MAX_ATTEMPTS: '20' }
  let gw = await spawnGateway(t, env)
  const jobs = Array.from({ length: 20 }, (_, i) => upstreams.job(i))
  const ids: string[] = []
  for (const job of jobs) ids.push(await submitJob(gw, job))

  const kills: string[] = []
  const interrupted = new Set<string>()
  for (let kill = 1; kill <= 3; kill++) {
    // A random moment of the run: 0.3 to 2.5 s after the gateway (re)started working.
    await new Promise(resolve => setTimeout(resolve, 300 + Math.floor(random() * 2200)))
    const views = await Promise.all(ids.map(jobReader(() => gw)))
    const running = views.filter(v => !isTerminal(v))
    if (running.length === 0) break
    for (const v of running) interrupted.add(v.id)
    const midway = running.filter(v => v.progress.pagesDone > 0).length
    await gw.kill('SIGKILL')
    kills.push(`kill ${kill}: ${running.length} jobs unfinished, ${midway} of them with pages stored`)
    gw = await spawnGateway(t, env)
  }
  t.ok(kills.length >= 2, `the gateway was killed mid-run ${kills.length} times`)
  for (const k of kills) t.comment(k)

  const done = await Promise.all(ids.map(id => settle(jobReader(() => gw), id, HANG_AFTER_MS)))
  for (const [i, id] of ids.entries()) await judgeJob(tally, databaseUrl, `job ${i} (${jobs[i]?.body.upstream})`, id, done[i] ?? null, jobs[i]?.expected ?? [])
  const attempts = await sql<{ attempts: number }>(databaseUrl, 'SELECT attempts FROM jobs WHERE id = ANY($1::uuid[])', [ids])
  const resumed = attempts.filter(a => a.attempts > 1).length
  t.ok(resumed > 0, `${resumed} jobs were taken up again after a kill (attempts > 1); ${interrupted.size} were unfinished at a kill`)
  let duplicates = 0
  for (const id of ids) {
    const records = await storedRecords(databaseUrl, id)
    duplicates += records.length - new Set(records).size
  }
  t.equal(duplicates, 0, 'no record stored twice for a job')
  await gw.kill('SIGTERM')
})

t.test('process kills: the tally', async t => { tally.report(t) })
