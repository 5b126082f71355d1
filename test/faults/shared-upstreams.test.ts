/**
 * Fault campaign, what replicas share upstream-side: two gateway processes on one database meet budgets that run
 * out, a storm of 429s, and tokens that rotate while replicas restart. Every job must still complete with exactly
 * the simulator's records, and a job that waits for a budget must say so while it waits.
 */
import t, { type Test } from 'tap'
import { SANDBOX_API_KEY, SANDBOX_USER_AGENT, expectedRecords as clinikoRecords, startClinikoSimulator } from '../../src/upstreams/cliniko/simulator.js'
import { expectedRecords as drchronoRecords } from '../../src/upstreams/drchrono/simulator.js'
import type { DrchronoSimulatorOptions } from '../../src/upstreams/drchrono/simulator-state.js'
import { testDatabase } from '../helpers/database.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { spawnGateway, type GatewayProcess } from '../helpers/process.js'
import { CAMPAIGN_SEED, Tally, isTerminal, settle, type JobView } from './campaign.js'
import { jobReader, judgeJob, submitJob, type ReadJob } from './read-jobs.js'

const tally = new Tally('shared-upstreams')
const HANG_AFTER_MS = 150_000
const DRCHRONO_COUNTS = { appointments: 400 }
const CLINIKO_COUNTS = { patients: 500 }

const drchronoJob = (i: number): ReadJob => {
  const params = { page_size: 130 + i }
  return { body: { upstream: 'drchrono', resource: 'appointments', params }, expected: drchronoRecords('appointments', params, { seed: 7, recordCount: DRCHRONO_COUNTS }).map(r => JSON.stringify(r)) }
}
const clinikoJob = (i: number): ReadJob => {
  const params = { per_page: 40 + i }
  return { body: { upstream: 'cliniko', resource: 'patients', params }, expected: clinikoRecords('patients', params, { seed: 7, recordCount: CLINIKO_COUNTS }) }
}

/** DrChrono and Cliniko simulators, one database, two gateway processes on it. */
async function replicas (t: Test, drchrono: DrchronoSimulatorOptions, env: Record<string, string>, refresh = false) {
  const sim = await startDrchrono(t, { recordCount: DRCHRONO_COUNTS, inProgressPolls: 0, generationMs: 200, ...drchrono })
  const cliniko = await startClinikoSimulator({ seed: 7, recordCount: CLINIKO_COUNTS, latencyMs: 20 })
  t.teardown(() => cliniko.close())
  const databaseUrl = await testDatabase(t)
  const all = {
    ...drchronoEnv(sim, { refresh }), DATABASE_URL: databaseUrl, UPSTREAMS: 'drchrono,cliniko', WORKER_CONCURRENCY: '4', LEASE_SECONDS: '3',
    // The campaign reads every job's view several times a second.
    RATE_LIMIT_MAX: '0',
    CLINIKO_BASE_URL: cliniko.apiUrl, CLINIKO_API_KEY: SANDBOX_API_KEY, CLINIKO_USER_AGENT: SANDBOX_USER_AGENT, ...env,
  }
  const gateways = await Promise.all([spawnGateway(t, all), spawnGateway(t, all)])
  return { sim, cliniko, databaseUrl, env: all, gateways }
}

/** Asserts that every fault tallied since `before` was survived (the tally subtest also does, for the whole file). */
function survivedSince (t: Test, before: { tried: number, survived: number }): void {
  const failed = (tally.tried - before.tried) - (tally.survived - before.survived)
  t.equal(failed, 0, `every fault of this scenario survived${failed > 0 ? `: ${tally.notes.slice(-failed).join('; ')}` : ''}`)
}

async function submitAll (gateways: GatewayProcess[], jobs: ReadJob[]): Promise<string[]> {
  const ids: string[] = []
  for (const [i, job] of jobs.entries()) ids.push(await submitJob(gateways[i % gateways.length]!, job))
  return ids
}

t.test('budgets run out on two replicas: jobs wait, say so, and complete exactly', async t => {
  t.comment(`seed ${CAMPAIGN_SEED}`)
  const before = { ...tally }
  // DrChrono allows 3 requests a second here, and the gateway 2; Cliniko 20 a minute (19 after the margin), where
  // the four Cliniko jobs need about 45 requests: a minute's budget runs out and the rest waits for the window.
  const { sim, cliniko, databaseUrl, gateways } = await replicas(t, { maxRequestsPerSecond: 3 }, {
    DRCHRONO_REQUESTS_PER_SECOND: '2', CLINIKO_REQUESTS_PER_MINUTE: '20',
  })
  const jobs = [0, 1, 2, 3].flatMap(i => [drchronoJob(i), clinikoJob(i)])
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
  survivedSince(t, before)
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
  survivedSince(t, before)
})

t.test('tokens rotate every few seconds while replicas restart: one refresh at a time, every job exact', async t => {
  // Each token DrChrono issues lives 3 s: the replicas refresh ahead of expiry again and again, with strict
  // rotation (each refresh token works once), while one replica is stopped and one killed, and both restarted.
  const { sim, databaseUrl, env, gateways } = await replicas(t, { tokenExpiresInSeconds: 3, generationMs: 400 }, { UPSTREAMS: 'drchrono' }, true)
  const before = { ...tally }
  const jobs = [7, 8, 9, 10, 11, 12].map(drchronoJob)
  const ids = await submitAll(gateways, jobs)
  await new Promise(resolve => setTimeout(resolve, 700))
  sim.state.revokeAccessToken()
  await new Promise(resolve => setTimeout(resolve, 500))
  await gateways[0]!.kill('SIGTERM')
  gateways[0] = await spawnGateway(t, env)
  await new Promise(resolve => setTimeout(resolve, 1500))
  await gateways[1]!.kill('SIGKILL')
  gateways[1] = await spawnGateway(t, env)
  const done = await Promise.all(ids.map(id => settle(jobReader(() => gateways[0]!), id, HANG_AFTER_MS)))
  for (const [i, id] of ids.entries()) await judgeJob(tally, databaseUrl, `rotation job ${i}`, id, done[i] ?? null, jobs[i]!.expected)
  const { tokenRefreshes, failedRefreshes } = sim.state.stats
  tally.record('no refresh token was ever spent twice', { survived: failedRefreshes === 0, note: `${failedRefreshes} refreshes refused` })
  tally.record('tokens rotated during the run', { survived: tokenRefreshes >= 2, note: `only ${tokenRefreshes} refreshes` })
  t.comment(`${tokenRefreshes} refreshes, ${failedRefreshes} refused; ${sim.state.stats.unauthorized} answers 401`)
  survivedSince(t, before)
})

t.test('shared upstreams: the tally', async t => { tally.report(t) })
