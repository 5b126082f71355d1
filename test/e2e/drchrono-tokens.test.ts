/**
 * DrChrono's rotating OAuth tokens through the real gateway, its PostgreSQL and the strict simulator (each
 * refresh token works once): stored across restarts, refreshed once for all replicas, refreshed before expiry,
 * and a refused refresh that tells the operator what to do.
 */
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { sql, testDatabase } from '../helpers/database.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const recordCount = { patients: 300 }

/** Submits a patients job; a running job with the same params would be answered instead of a new one. */
async function submit (gw: TestGateway, params: Record<string, unknown> = { page_size: 100 }): Promise<string> {
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params }) })
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`)
  return (await res.json()).id
}

/** Polls `check` until it holds; the test's own timeout is the limit. */
async function until (check: () => boolean | Promise<boolean>): Promise<void> {
  while (!await check()) await sleep(20)
}

t.test('a rotated refresh token survives a restart; the spent configured one is never sent again', async t => {
  const sim = await startDrchrono(t, { recordCount })
  const databaseUrl = await testDatabase(t)
  const env = drchronoEnv(sim, { refresh: true })
  const first = await startGateway(t, { env, databaseUrl })
  sim.state.revokeAccessToken()
  const one = await waitForJob(first, await submit(first))
  t.equal(one.status, 'completed', JSON.stringify(one.error))
  t.equal(sim.state.stats.tokenRefreshes, 1)
  await first.app.close()

  const second = await startGateway(t, { env, databaseUrl })
  const unauthorized = sim.state.stats.unauthorized
  const two = await waitForJob(second, await submit(second))
  t.equal(two.status, 'completed', JSON.stringify(two.error))
  t.equal(sim.state.stats.unauthorized, unauthorized, 'after the restart the stored access token works at once')

  sim.state.revokeAccessToken()
  const three = await waitForJob(second, await submit(second))
  t.equal(three.status, 'completed', JSON.stringify(three.error))
  t.equal(sim.state.stats.tokenRefreshes, 2, 'refreshed with the stored refresh token')
  t.equal(sim.state.stats.failedRefreshes, 0, 'the configured refresh token, spent before the restart, was not sent again')
})

t.test('two replicas meeting a 401 at the same moment refresh once between them', async t => {
  const sim = await startDrchrono(t, { recordCount })
  const databaseUrl = await testDatabase(t)
  // One job at a time per replica, one page at a time per job: each replica runs one job, with one 401 each.
  const env = { ...drchronoEnv(sim, { refresh: true }), WORKER_CONCURRENCY: '1', DRCHRONO_PAGE_CONCURRENCY: '1' }
  const replicas = [await startGateway(t, { env, databaseUrl }), await startGateway(t, { env, databaseUrl })] as const
  sim.state.revokeAccessToken()
  const release = sim.state.holdTokenRequests()
  t.teardown(release)

  const firstJob = await submit(replicas[0])
  await until(() => sim.state.waitingTokenRequests === 1) // its replica refreshes, holding the lock, and is busy
  const secondJob = await submit(replicas[0], { page_size: 150 })
  // The other replica takes the second job, meets the 401 and waits for the lock (or, without one, refreshes too).
  const waitingForLock = async () => (await sql<{ n: number }>(databaseUrl, `
    SELECT count(*)::int AS n FROM pg_locks l, (SELECT hashtextextended('upstream-credential:drchrono', 0) AS k) h
    WHERE l.locktype = 'advisory' AND NOT l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid::bigint = (h.k >> 32) & 4294967295 AND l.objid::bigint = h.k & 4294967295`))[0]?.n ?? 0
  await until(async () => sim.state.stats.unauthorized >= 2 && (sim.state.waitingTokenRequests >= 2 || await waitingForLock() >= 1))
  release()

  const done = await Promise.all([firstJob, secondJob].map(id => waitForJob(replicas[0], id)))
  t.same(done.map(j => j.status), ['completed', 'completed'], JSON.stringify(done.map(j => j.error)))
  t.equal(sim.state.stats.tokenRefreshes, 1, 'exactly one refresh')
  t.equal(sim.state.stats.failedRefreshes, 0, 'nobody spent a dead refresh token')
  const ranBy = (id: string) => replicas.findIndex(r => r.logs.some(l => l.includes(id) && l.includes('job completed')))
  t.same([ranBy(firstJob), ranBy(secondJob)].sort(), [0, 1], 'each replica ran one of the jobs')
})

t.test('a token with a known expiry is refreshed before DrChrono refuses it', async t => {
  const sim = await startDrchrono(t, { recordCount, tokenExpiresInSeconds: 20 })
  const gw = await startGateway(t, { env: drchronoEnv(sim, { refresh: true }) })
  // The configured token's expiry is unknown: DrChrono's 401 tells. The refreshed one comes with expires_in.
  sim.state.revokeAccessToken()
  const first = await waitForJob(gw, await submit(gw))
  t.equal(first.status, 'completed', JSON.stringify(first.error))
  t.equal(sim.state.stats.tokenRefreshes, 1)
  const before = { ...sim.state.stats }

  // Past the refresh point (half of 20 s) and well before the expiry.
  await sleep(11_000)
  const second = await waitForJob(gw, await submit(gw))
  t.equal(second.status, 'completed', JSON.stringify(second.error))
  t.ok(sim.state.stats.tokenRefreshes > before.tokenRefreshes, 'refreshed again')
  t.equal(sim.state.stats.unauthorized, before.unauthorized, 'before any request was refused')
  t.equal(sim.state.stats.failedRefreshes, 0)
})

t.test('a refused refresh fails the job with upstream_unauthorized and says what to do', async t => {
  const advice = /set DRCHRONO_REFRESH_TOKEN \(and DRCHRONO_ACCESS_TOKEN\) to a fresh pair from DrChrono's OAuth flow and restart; the gateway stores the rotated tokens from then on/
  const sim = await startDrchrono(t, { recordCount })
  const gw = await startGateway(t, { env: drchronoEnv(sim, { refresh: true }) })
  sim.state.revokeAccessToken()
  sim.state.refreshToken = 'rotated-by-someone-else'
  const failed = await waitForJob(gw, await submit(gw))
  t.equal(failed.status, 'failed')
  t.match(failed.error, { code: 'upstream_unauthorized', message: /^DrChrono refused the configured refresh token \(invalid_grant\): / })
  t.match(failed.error.message, advice)
  t.equal(sim.state.stats.failedRefreshes, 1)

  // Some servers answer invalid_grant with 401 rather than 400; a stored token refused later reads the same.
  const strict = await startDrchrono(t, { recordCount, invalidGrantStatus: 401 })
  const gw2 = await startGateway(t, { env: drchronoEnv(strict, { refresh: true }) })
  strict.state.revokeAccessToken()
  t.equal((await waitForJob(gw2, await submit(gw2))).status, 'completed')
  strict.state.revokeAccessToken()
  strict.state.refreshToken = 'rotated-by-someone-else'
  const refused = await waitForJob(gw2, await submit(gw2))
  t.match(refused.error, { code: 'upstream_unauthorized', message: /^DrChrono refused the stored refresh token \(invalid_grant\): / })
  t.match(refused.error.message, advice)
})

t.test('recovery: a freshly configured pair wins over the stored one, which won until then', async t => {
  const sim = await startDrchrono(t, { recordCount })
  const databaseUrl = await testDatabase(t)
  const first = await startGateway(t, { env: drchronoEnv(sim, { refresh: true }), databaseUrl })
  sim.state.revokeAccessToken()
  t.equal((await waitForJob(first, await submit(first))).status, 'completed')
  // The stored pair dies (say, revoked in DrChrono's console); the operator authorizes again and configures the new pair.
  sim.state.refreshToken = 'rotated-by-someone-else'
  sim.state.revokeAccessToken()
  t.equal((await waitForJob(first, await submit(first))).status, 'failed')
  await first.app.close()
  sim.state.accessToken = 'fresh-access-from-oauth'
  sim.state.refreshToken = 'fresh-refresh-from-oauth'

  const env = { ...drchronoEnv(sim, { refresh: true }), DRCHRONO_ACCESS_TOKEN: 'fresh-access-from-oauth', DRCHRONO_REFRESH_TOKEN: 'fresh-refresh-from-oauth' }
  const second = await startGateway(t, { env, databaseUrl })
  const before = { ...sim.state.stats }
  t.equal((await waitForJob(second, await submit(second))).status, 'completed')
  t.equal(sim.state.stats.unauthorized, before.unauthorized, 'the configured access token is used, not the stored dead one')
  sim.state.revokeAccessToken()
  t.equal((await waitForJob(second, await submit(second))).status, 'completed', 'and its refresh token refreshes')
  t.equal(sim.state.stats.failedRefreshes, before.failedRefreshes)
})

t.test('a changed TOKEN_ENCRYPTION_KEY is reported; with the old one as TOKEN_ENCRYPTION_KEY_PREVIOUS the tokens carry over', async t => {
  const sim = await startDrchrono(t, { recordCount })
  const databaseUrl = await testDatabase(t)
  const oldKey = randomBytes(32).toString('base64')
  const newKey = randomBytes(32).toString('base64')
  const env = drchronoEnv(sim, { refresh: true })
  const first = await startGateway(t, { env: { ...env, TOKEN_ENCRYPTION_KEY: oldKey }, databaseUrl })
  sim.state.revokeAccessToken()
  t.equal((await waitForJob(first, await submit(first))).status, 'completed')
  await first.app.close()

  const wrong = await startGateway(t, { env: { ...env, TOKEN_ENCRYPTION_KEY: newKey }, databaseUrl })
  const failed = await waitForJob(wrong, await submit(wrong))
  t.match(failed.error, { code: 'internal_error', message: /^the stored "drchrono" credential was encrypted with another TOKEN_ENCRYPTION_KEY \(key id [0-9a-f]{16}; this gateway has [0-9a-f]{16}\)/ })
  t.notMatch(failed.error.message, new RegExp(`${oldKey}|${newKey}`.replace(/[+/]/g, '\\$&')), 'keys are named by id only')
  await wrong.app.close()

  const moved = await startGateway(t, { env: { ...env, TOKEN_ENCRYPTION_KEY: newKey, TOKEN_ENCRYPTION_KEY_PREVIOUS: oldKey }, databaseUrl })
  const before = { ...sim.state.stats }
  t.equal((await waitForJob(moved, await submit(moved, { page_size: 120 }))).status, 'completed')
  t.equal(sim.state.stats.unauthorized, before.unauthorized, 'the stored access token was read with the previous key')
  await moved.app.close()
  const only = await startGateway(t, { env: { ...env, TOKEN_ENCRYPTION_KEY: newKey }, databaseUrl })
  t.equal((await waitForJob(only, await submit(only, { page_size: 130 }))).status, 'completed', 'and is now sealed with the new key alone')
})
