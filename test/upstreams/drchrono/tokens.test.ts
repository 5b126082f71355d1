/** DrChrono's token pair: when it is refreshed, what a token answer means, and the seed digest. */
import t from 'tap'
import type { UpstreamResponse } from '../../../src/upstreams/http.js'
import { isDue, pairFromAnswer, pairFromStored, refreshDelayMs, seedOf, storedValue } from '../../../src/upstreams/drchrono/tokens.js'

const answer = (body: unknown) => ({ status: 200, text: () => JSON.stringify(body) }) as unknown as UpstreamResponse
const HOUR = 3_600_000

t.test('refreshed at 90% of the lifetime or 5 minutes before its end, whichever is earlier, never before half of it', async t => {
  t.equal(refreshDelayMs(48 * HOUR), 0.9 * 48 * HOUR, '48 h: after 43.2 h')
  t.equal(refreshDelayMs(10 * 60_000), 5 * 60_000, '10 min: 5 min before the end')
  t.equal(refreshDelayMs(4000), 2000, '4 s: at half of it, not at every request')
  const pair = pairFromAnswer(answer({ access_token: 'a', refresh_token: 'r', expires_in: 20 }), 'old', 1_000_000)
  t.same(pair, { accessToken: 'a', refreshToken: 'r', expiresAt: 1_020_000, refreshAt: 1_010_000 })
  t.notOk(isDue(pair!, 1_009_999))
  t.ok(isDue(pair!, 1_010_000))
})

t.test('token answers', async t => {
  t.same(pairFromAnswer(answer({ access_token: 'a', expires_in: '60' }), 'old', 0), { accessToken: 'a', refreshToken: 'old', expiresAt: 60_000, refreshAt: 30_000 },
    'no refresh_token keeps the old one; a numeric string expires_in is read')
  t.same(pairFromAnswer(answer({ access_token: 'a', refresh_token: 'r' }), 'old', 0), { accessToken: 'a', refreshToken: 'r', expiresAt: null, refreshAt: null },
    'no expires_in: only a 401 tells')
  t.equal(pairFromAnswer(answer({ refresh_token: 'r' }), 'old', 0), null)
  t.equal(pairFromAnswer({ status: 200, text: () => 'not json' } as unknown as UpstreamResponse, 'old', 0), null)
})

t.test('stored pairs round-trip; anything else is ignored', async t => {
  const pair = { accessToken: 'a', refreshToken: 'r', expiresAt: 5, refreshAt: 3 }
  t.same(pairFromStored(JSON.parse(JSON.stringify(storedValue(pair)))), pair)
  t.equal(pairFromStored({ accessToken: 'a' }), null)
  t.equal(pairFromStored({ ...pair, expiresAt: 'soon' }), null)
})

t.test('the seed changes with any configured value and does not contain them', async t => {
  const base = { baseUrl: 'https://app.drchrono.com', clientId: 'c', accessToken: 'access-SEEDMARK', refreshToken: 'refresh-SEEDMARK' }
  const seed = seedOf(base)
  t.equal(seedOf({ ...base, baseUrl: 'https://app.drchrono.com/' }), seed, 'a trailing slash is the same host')
  for (const key of Object.keys(base) as Array<keyof typeof base>) t.not(seedOf({ ...base, [key]: `${base[key]}x` }), seed, key)
  t.notMatch(seed, /SEEDMARK/)
})
