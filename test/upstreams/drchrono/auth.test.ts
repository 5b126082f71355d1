/**
 * DrchronoAuth against the simulator with stores that misbehave: a rotated pair whose write failed is stored
 * before anything else, and a refresh is sent once, never retried (a retry would spend a dead refresh token).
 */
import t, { type Test } from 'tap'
import { MemoryCredentialStore, type CredentialStore } from '../../../src/upstreams/credential-store.js'
import { DRCHRONO_CREDENTIAL, DrchronoAuth } from '../../../src/upstreams/drchrono/auth.js'
import { SANDBOX_CREDENTIALS, startDrchronoSimulator } from '../../../src/upstreams/drchrono/simulator/index.js'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { MemoryBudgetStore } from '../../../src/upstreams/request-budget.js'

async function setup (t: Test, credentials: CredentialStore) {
  const sim = await startDrchronoSimulator({ seed: 7, inProgressPolls: 0 })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => { await client.close(); await sim.close() })
  const auth = new DrchronoAuth({ baseUrl: sim.url, ...SANDBOX_CREDENTIALS }, client, { credentials, budgets: new MemoryBudgetStore() })
  const list = new URL('api/patients_list?page=1', `${sim.url}/`)
  const post = () => auth.send({ method: 'POST', url: list, signal: AbortSignal.timeout(30_000), headers: { 'content-type': 'application/json' } })
  return { sim, auth, post }
}

t.test('a rotated pair whose write failed is written again, so the spent refresh token is never used again', async t => {
  const memory = new MemoryCredentialStore()
  let failures = 1
  // The first write after a refresh fails as a database restart would: after fn ran, before it committed.
  const flaky: CredentialStore = {
    read: name => memory.read(name),
    async update (name, fn) {
      let wrote = false
      const result = await memory.update(name, async current => {
        const next = await fn(current)
        wrote = next !== undefined
        return failures > 0 && wrote ? undefined : next
      })
      if (failures > 0 && wrote) { failures--; throw new Error('connection terminated') }
      return result
    },
  }
  const { sim, post } = await setup(t, flaky)
  sim.state.revokeAccessToken()
  const res = await post()
  t.equal(res.status, 201, 'the request went through with the refreshed token')
  const stored = await memory.read(DRCHRONO_CREDENTIAL)
  t.equal(stored?.value.accessToken, sim.state.accessToken, 'the rotated pair was stored after all')
  t.equal(sim.state.stats.tokenRefreshes, 1)
})

t.test('a refresh whose answer was lost is not sent again; the next attempt says what to do', async t => {
  const { sim, post } = await setup(t, new MemoryCredentialStore())
  sim.state.revokeAccessToken()
  // DrChrono rotates the pair, then a proxy loses its answer: the refresh token the gateway holds is spent.
  sim.state.loseTokenAnswers(1)
  const err = await post().catch((e: unknown) => e) as Error
  t.notOk('code' in err, 'not a job failure: the worker tries the job again later')
  t.match(err.message, /token endpoint answered 502/)
  t.equal(sim.state.stats.tokenRefreshes, 1, 'the refresh was sent once, not retried with the spent token')
  const again = await post().catch((e: unknown) => e)
  t.match(again, { code: 'upstream_unauthorized', message: /refused the configured refresh token \(invalid_grant\): set DRCHRONO_REFRESH_TOKEN/ },
    'the next attempt meets the spent token once, and the job fails saying what to do')
  t.equal(sim.state.stats.failedRefreshes, 1)
})
