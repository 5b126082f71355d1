/**
 * Fault campaign, a replica dies: two gateway processes share one database and its jobs, and one of them is
 * SIGKILLed while it holds jobs mid-run. The other must take those jobs over once their leases expire (a short
 * LEASE_SECONDS here), resume each from its checkpoint, and complete every job with exactly the simulator's
 * records. (test/e2e/crash-and-replicas.test.ts has two replicas that both live.)
 */
import t from 'tap'
import { testDatabase, sql } from '../helpers/database.js'
import { spawnGateway, type GatewayProcess } from '../helpers/process.js'
import { CAMPAIGN_SEED, Tally, isTerminal, settle } from './campaign.js'
import { jobReader, judgeJob, startReadUpstreams, submitJob } from './read-jobs.js'

const tally = new Tally('replica-takeover')
const HANG_AFTER_MS = 120_000

t.test('two replicas, one SIGKILLed: the other takes its jobs over once their leases expire', async t => {
  t.comment(`seed ${CAMPAIGN_SEED}`)
  const upstreams = await startReadUpstreams(t)
  const databaseUrl = await testDatabase(t)
  const env = { ...upstreams.env, DATABASE_URL: databaseUrl, LEASE_SECONDS: '3', WORKER_CONCURRENCY: '3' }
  const [a, b] = await Promise.all([spawnGateway(t, env), spawnGateway(t, env)])
  const jobs = Array.from({ length: 6 }, (_, i) => upstreams.job(20 + i))
  const ids: string[] = []
  for (const [i, job] of jobs.entries()) ids.push(await submitJob(i % 2 === 0 ? a : b, job))

  // Kill A once it holds a job that has stored pages and is not done. A job is held by the replica that started
  // (or resumed) it last: on a loaded machine a late heartbeat can hand a job from one live replica to the other.
  const lastStart = (gw: GatewayProcess, id: string) => Math.max(0, ...gw.logs
    .filter(l => l.jobId === id && (l.msg === 'job started' || l.msg === 'job resumed from its checkpoint')).map(l => Number(l.time)))
  const heldByA = (id: string) => lastStart(a, id) > lastStart(b, id)
  let held: string[] = []
  for (const deadline = Date.now() + 60_000; held.length === 0 && Date.now() < deadline;) {
    await new Promise(resolve => setTimeout(resolve, 100))
    const views = await Promise.all(ids.map(jobReader(() => b)))
    held = views.filter(v => heldByA(v.id) && !isTerminal(v) && v.progress.pagesDone > 0).map(v => v.id)
  }
  const killedAt = Date.now()
  await a.kill('SIGKILL')
  // One of them may have completed (or moved to B) between the look and the kill: only what A still had counts.
  const afterKill = await Promise.all(held.map(jobReader(() => b)))
  held = afterKill.filter(v => !isTerminal(v) && heldByA(v.id)).map(v => v.id)
  t.ok(held.length > 0, `replica A held ${held.length} job(s) mid-run when it was killed`)

  const done = await Promise.all(ids.map(id => settle(jobReader(() => b), id, HANG_AFTER_MS)))
  for (const [i, id] of ids.entries()) await judgeJob(tally, databaseUrl, `replica job ${i} (${jobs[i]?.body.upstream})${held.includes(id) ? ', held by the killed replica' : ''}`, id, done[i] ?? null, jobs[i]?.expected ?? [])
  const takenOver = held.filter(id => b.logs.some(l => l.msg === 'job resumed from its checkpoint' && l.jobId === id))
  const story = (id: string) => [a, b].map((gw, n) => `${n === 0 ? 'A' : 'B'}: ${gw.logs.filter(l => l.jobId === id).map(l => String(l.msg)).join(' → ')}`).join('; ')
  t.same(takenOver, held, 'replica B resumed every job A held, from its checkpoint', { stories: held.filter(id => !takenOver.includes(id)).map(story) })
  const leases = await sql<{ id: string, attempts: number }>(databaseUrl, 'SELECT id, attempts FROM jobs WHERE id = ANY($1::uuid[])', [held])
  t.ok(leases.every(j => j.attempts >= 2), 'each of them was claimed again after the kill')
  t.comment(`B finished A's jobs ${Math.round((Date.now() - killedAt) / 100) / 10} s after the kill (lease 3 s)`)
  await b.kill('SIGTERM')
})

t.test('replica takeover: the tally', async t => { tally.report(t) })
