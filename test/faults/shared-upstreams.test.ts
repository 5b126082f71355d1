/**
 * Fault campaign, budgets replicas share upstream-side: two gateway processes on one database meet budgets that
 * run out and a storm of 429s. Every job must still complete with exactly the simulator's records, and a job that
 * waits for a budget must say so while it waits. (token-rotation.test.ts: tokens that rotate while replicas restart.)
 */
import t from 'tap'
import { CAMPAIGN_SEED, Tally, isTerminal, settle, type JobView } from './campaign.js'
import { jobReader, judgeJob } from './read-jobs.js'
import { clinikoJob, drchronoJob, replicas, submitAll, survivedSince } from './replicas.js'

const tally = new Tally('shared-upstreams')
const HANG_AFTER_MS = 150_000

t.test('budgets run out on two replicas: jobs wait, say so, and complete exactly', async t => {
  t.comment(`seed ${CAMPAIGN_SEED}`)
  const before = { ...tally }
  // DrChrono allows 3 requests a second here, and the gateway 2; Cliniko 20 a minute (19 after the margin), where
  // the two Cliniko jobs need 24 requests: the minute's budget runs out and the rest waits for the window to slide.
  const { sim, cliniko, databaseUrl, gateways } = await replicas(t, { maxRequestsPerSecond: 3 }, {
    DRCHRONO_REQUESTS_PER_SECOND: '2', CLINIKO_REQUESTS_PER_MINUTE: '20',
  })
  const jobs = [...[0, 1, 2, 3].map(drchronoJob), clinikoJob(0), clinikoJob(1)]
  const ids = await submitAll(gateways, jobs)
  const waits = new Set<string>()
  const watch = (async () => {
    for (let left = ids.length; left > 0;) {
      left = 0
      for (const id of ids) {
        const res = await gateways[0]!.request(`/jobs/${id}`)
        const progress = res.headers.get('x-progress')
        if (progress?.includes('waiting for') === true) waits.add(progress.replace(/^.*waiting for (.*) until .*$/, '$1'))
        if (!isTerminal(await res.json() as JobView)) left++
      }
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  })()
  const done = await Promise.all(ids.map(id => settle(jobReader(() => gateways[1]!), id, HANG_AFTER_MS)))
  await watch
  for (const [i, id] of ids.entries()) await judgeJob(tally, databaseUrl, `budget job ${i} (${jobs[i]!.body.upstream})`, id, done[i] ?? null, jobs[i]!.expected)
  tally.record('a job waiting for a budget said what it waited for', { survived: waits.size > 0, note: 'no X-Progress ever said "waiting for"' })
  t.comment(`waits seen: ${[...waits].join('; ')}; 429s: DrChrono ${sim.state.stats.throttled}, Cliniko ${cliniko.state.stats.throttled}`)
  survivedSince(t, tally, before)
})

t.test('a storm of 429s across two replicas: every job completes exactly', async t => {
  const { sim, cliniko, databaseUrl, gateways } = await replicas(t, { faults: { throttleRatio: 0.3, retryAfterSeconds: 1 } }, {})
  const before = { ...tally }
  cliniko.state.throttleNext(25, 1)
  const jobs = [4, 5, 6].flatMap(i => [drchronoJob(i), clinikoJob(i)])
  const ids = await submitAll(gateways, jobs)
  const done = await Promise.all(ids.map(id => settle(jobReader(() => gateways[0]!), id, HANG_AFTER_MS)))
  for (const [i, id] of ids.entries()) await judgeJob(tally, databaseUrl, `storm job ${i} (${jobs[i]!.body.upstream})`, id, done[i] ?? null, jobs[i]!.expected)
  t.comment(`429s answered: DrChrono ${sim.state.stats.throttled}, Cliniko ${cliniko.state.stats.throttled}`)
  survivedSince(t, tally, before)
})

t.test('shared upstreams: the tally', async t => { tally.report(t) })
