/**
 * Fault campaign, tokens that rotate across replicas: each token DrChrono issues lives 3 s and each refresh token
 * works once, while two gateway processes on one database refresh ahead of expiry again and again, and each of them
 * is stopped (SIGTERM) and started again mid-run. Every job must complete with exactly the simulator's records, and
 * no refresh token may ever be spent twice.
 *
 * Not SIGKILL: a process killed between DrChrono's rotation and the write of the new pair (a refresh's few
 * milliseconds) takes the only copy of the new tokens with it, and no design can recover them, since DrChrono has
 * already spent the old refresh token. With 3-second tokens that window comes round every second or so; with
 * DrChrono's hours-long ones, almost never. process-kill.test.ts kills processes without refresh credentials.
 */
import t from 'tap'
import { spawnGateway } from '../helpers/process.js'
import { CAMPAIGN_SEED, Tally, settle } from './campaign.js'
import { jobReader, judgeJob } from './read-jobs.js'
import { drchronoJob, replicas, submitAll, survivedSince } from './replicas.js'

const tally = new Tally('token-rotation')
const HANG_AFTER_MS = 120_000

t.test('tokens rotate every few seconds while replicas restart: one refresh at a time, every job exact', async t => {
  t.comment(`seed ${CAMPAIGN_SEED}`)
  // Each token DrChrono issues lives 3 s: the replicas refresh ahead of expiry again and again, with strict
  // rotation (each refresh token works once), while each replica in turn is stopped and started again.
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
  await gateways[1]!.kill('SIGTERM')
  gateways[1] = await spawnGateway(t, env)
  const done = await Promise.all(ids.map(id => settle(jobReader(() => gateways[0]!), id, HANG_AFTER_MS)))
  for (const [i, id] of ids.entries()) await judgeJob(tally, databaseUrl, `rotation job ${i}`, id, done[i] ?? null, jobs[i]!.expected)
  const { tokenRefreshes, failedRefreshes } = sim.state.stats
  tally.record('no refresh token was ever spent twice', { survived: failedRefreshes === 0, note: `${failedRefreshes} refreshes refused` })
  tally.record('tokens rotated during the run', { survived: tokenRefreshes >= 2, note: `only ${tokenRefreshes} refreshes` })
  t.comment(`${tokenRefreshes} refreshes, ${failedRefreshes} refused; ${sim.state.stats.unauthorized} answers 401`)
  survivedSince(t, tally, before)
})

t.test('token rotation: the tally', async t => { tally.report(t) })
