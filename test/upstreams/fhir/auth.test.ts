/** SMART Backend Services against the simulator's token endpoint: keys, token caching across jobs, refusals. */
import { generateKeyPair, exportJWK } from 'jose'
import t from 'tap'
import { SmartAuth } from '../../../src/upstreams/fhir/auth.js'
import { parseSigningKey, type SigningKey } from '../../../src/upstreams/fhir/jwk.js'
import { expectedRecords } from '../../../src/upstreams/fhir/simulator/index.js'
import { fhirEnv, fhirSettingsFromEnv } from '../../../src/upstreams/fhir/env.js'
import { fakeJob } from '../../helpers/job-context.js'
import { SIM, sameRecords, setup, startProxy } from './setup.js'

async function keyPair (alg: 'RS384' | 'ES384', kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
  const pub = { ...await exportJWK(publicKey), kid, alg }
  const priv = { ...await exportJWK(privateKey), kid, alg }
  return { pub, priv }
}

for (const alg of ['RS384', 'ES384'] as const) {
  t.test(`${alg}: a secure server; one token serves two jobs, files get the bearer (requiresAccessToken)`, async t => {
    const { pub, priv } = await keyPair(alg, `k-${alg}`)
    const key = parseSigningKey(JSON.stringify(priv)) as SigningKey
    t.equal(key.alg, alg)
    const smart = { clientId: 'client-a', key, scope: 'system/*.read' }
    const { state, adapter } = await setup(t, { secure: true, clients: { 'client-a': pub } }, { auth: smart })
    const one = fakeJob('system', { _type: 'Patient' })
    const two = fakeJob('patient', { _type: 'Condition' })
    await Promise.all([adapter.run(one.ctx), adapter.run(two.ctx)])
    sameRecords(t, one.records(), expectedRecords(SIM, { level: 'system', _type: 'Patient' }), 'job one')
    sameRecords(t, two.records(), expectedRecords(SIM, { level: 'patient', _type: 'Condition' }), 'job two')
    t.match(state.stats, { tokenRequests: 1, tokensIssued: 1, tokensRefused: 0, unauthorized: 0 })
    t.match(one.upstreamInfo, { requiresAccessToken: true })
  })
}

t.test('a token the server stopped accepting is dropped and fetched again, once', async t => {
  const { pub, priv } = await keyPair('ES384', 'k1')
  const smart = { clientId: 'c', key: parseSigningKey(JSON.stringify(priv)) as SigningKey, scope: 'system/*.read' }
  const { state, adapter } = await setup(t, { secure: true, clients: { c: pub } }, { auth: smart })
  await adapter.run(fakeJob('system', { _type: 'Patient' }).ctx)
  state.tokens.clear() // revoked server-side
  const job = fakeJob('system', { _type: 'Patient' })
  await adapter.run(job.ctx)
  t.equal(job.records().length, 12)
  t.match(state.stats, { tokenRequests: 2, unauthorized: 1 })
})

t.test('a token endpoint refusing the client fails the job with upstream_unauthorized', async t => {
  const { pub, priv } = await keyPair('RS384', 'k2')
  const smart = { clientId: 'c', key: parseSigningKey(JSON.stringify(priv)) as SigningKey, scope: 'system/*.read' }
  const { state, adapter } = await setup(t, { secure: true, clients: { c: pub } }, { auth: smart })
  state.refuseTokensNext(1)
  await t.rejects(adapter.run(fakeJob('system').ctx), { code: 'upstream_unauthorized', upstreamStatus: 401, message: /refused the client \(401 \(invalid_client\)\)/ })
  const other = await keyPair('RS384', 'k2') // the right kid, another key: the signature fails
  const wrong = { ...smart, key: parseSigningKey(JSON.stringify(other.priv)) as SigningKey }
  const { adapter: wrongAdapter } = await setup(t, { secure: true, clients: { c: pub } }, { auth: wrong })
  await t.rejects(wrongAdapter.run(fakeJob('system').ctx), { code: 'upstream_unauthorized' })
})

t.test('an open server gets no Authorization header', async t => {
  const { state, adapter } = await setup(t)
  await adapter.run(fakeJob('system', { _type: 'Patient' }).ctx)
  t.equal(state.stats.withAuthorization, 0)
  t.equal(state.stats.tokenRequests, 0)
})

t.test('FHIR_PRIVATE_KEY is checked at start-up', async t => {
  const { pub, priv } = await keyPair('ES384', 'k3')
  const env = (extra: Record<string, string>) => fhirEnv.safeParse({ FHIR_BASE_URL: 'https://fhir.example.org/r4', ...extra })
  t.ok(env({ FHIR_CLIENT_ID: 'c', FHIR_PRIVATE_KEY: JSON.stringify(priv) }).success)
  const refused = (key: string, why: RegExp) => {
    const r = env({ FHIR_CLIENT_ID: 'c', FHIR_PRIVATE_KEY: key })
    t.notOk(r.success)
    t.match(JSON.stringify(r.error?.issues), why)
  }
  refused('not json', /not JSON/)
  refused(JSON.stringify(pub), /no private part/)
  refused(JSON.stringify({ keys: [priv] }), /JWK set/)
  refused(JSON.stringify({ ...priv, kid: undefined }), /no \\"kid\\"/)
  refused(JSON.stringify({ ...priv, d: 'AAAA' }), /not a valid private key/)
  refused(JSON.stringify({ ...priv, alg: 'HS256' }), /expected RS384 or ES384/)
  t.notOk(env({ FHIR_CLIENT_ID: 'c' }).success, 'a client id without a key')
  t.same(fhirSettingsFromEnv(fhirEnv.parse({ FHIR_BASE_URL: 'https://fhir.example.org/r4', FHIR_TOKEN_ORIGINS: 'https://files.example.org, http://10.0.0.5:9000' }))?.tokenOrigins,
    ['https://files.example.org', 'http://10.0.0.5:9000'], 'FHIR_TOKEN_ORIGINS')
  t.same(fhirSettingsFromEnv(fhirEnv.parse({ FHIR_BASE_URL: 'https://fhir.example.org/r4' }))?.tokenOrigins, [], 'none by default')
  t.notOk(env({ FHIR_TOKEN_ORIGINS: 'https://files.example.org/bucket' }).success, 'an origin with a path')
})

t.test('a token asked for with an aborted signal starts no request, and a failing shared one is never an unhandled rejection', async t => {
  const { pub, priv } = await keyPair('ES384', 'k4')
  const smart = { clientId: 'c', key: parseSigningKey(JSON.stringify(priv)) as SigningKey, scope: 'system/*.read' }
  const { state, client, settings } = await setup(t, { secure: true, clients: { c: pub } })
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  const auth = new SmartAuth({ ...smart, tokenUrl: `${settings.baseUrl}/auth/token` }, settings.baseUrl, client)
  state.refuseTokensNext(2)
  const aborted = AbortSignal.abort(new Error('job cancelled'))
  await t.rejects(auth.header(aborted), /job cancelled/)
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(state.stats.tokenRequests, 0, 'the aborted ask sent nothing')
  // A job still waiting gets the shared request's failure; one that gave up does not leave it unobserved.
  const controller = new AbortController()
  const waiting = auth.header(controller.signal)
  const gaveUp = new AbortController()
  const leaving = auth.header(gaveUp.signal)
  gaveUp.abort(new Error('gave up'))
  await t.rejects(leaving, /gave up/)
  await t.rejects(waiting, { code: 'upstream_unauthorized' })
  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(unhandled, [], 'no unhandled rejection')
  t.equal(state.stats.tokenRequests, 1, 'one request, shared')
})

t.test('the bearer token goes only to the FHIR server\'s origin, its token endpoint\'s, and FHIR_TOKEN_ORIGINS', async t => {
  const { pub, priv } = await keyPair('ES384', 'k5')
  const smart = { clientId: 'c', key: parseSigningKey(JSON.stringify(priv)) as SigningKey, scope: 'system/*.read' }
  const secure = { secure: true, clients: { c: pub } }
  const proxy = await startProxy(t)
  // The URL guard lets the other loopback origin through: what is judged here is the token, not the address.
  const guard = { urlGuard: { allowedOrigins: [proxy.url] } }

  t.test('files on another origin that need the token, not allowed: refused, nothing sent there', async t => {
    const { state, adapter, simulator } = await setup(t, { ...secure, filesAt: proxy.url }, { auth: smart }, guard)
    proxy.target = simulator.url
    proxy.seen.length = 0
    await t.rejects(adapter.run(fakeJob('system', { _type: 'Patient' }).ctx), { code: 'upstream_url_refused', message: /another origin.*FHIR_TOKEN_ORIGINS/ })
    t.same(proxy.seen, [], 'the other origin got no request')
    t.equal(state.stats.cancels, 1, 'the export was released')
  })

  t.test('files on an origin listed in FHIR_TOKEN_ORIGINS get the token', async t => {
    const { adapter, simulator } = await setup(t, { ...secure, filesAt: proxy.url }, { auth: smart, tokenOrigins: [proxy.url] }, guard)
    proxy.target = simulator.url
    proxy.seen.length = 0
    const job = fakeJob('system', { _type: 'Patient' })
    await adapter.run(job.ctx)
    sameRecords(t, job.records(), expectedRecords(SIM, { level: 'system', _type: 'Patient' }), 'through the other origin')
    t.ok(proxy.seen.length > 0 && proxy.seen.every(r => r.authorization?.startsWith('Bearer ') === true), 'every download carried the token')
  })

  t.test('a status URL on another origin, not allowed: refused before any poll', async t => {
    const { state, adapter, simulator } = await setup(t, { ...secure, statusAt: proxy.url }, { auth: smart }, guard)
    proxy.target = simulator.url
    proxy.seen.length = 0
    await t.rejects(adapter.run(fakeJob('system', { _type: 'Patient' }).ctx), { code: 'upstream_url_refused', message: /status URL.*another origin/ })
    t.ok(proxy.seen.every(r => r.authorization === undefined), 'no token went there')
    t.equal(state.stats.statusPolls, 0)
  })
})

t.test('a token endpoint failing (not refusing the client) maps by its status, not to upstream_unauthorized', async t => {
  const { pub, priv } = await keyPair('ES384', 'k6')
  const smart = { clientId: 'c', key: parseSigningKey(JSON.stringify(priv)) as SigningKey, scope: 'system/*.read' }
  const { state, adapter } = await setup(t, { secure: true, clients: { c: pub } }, { auth: smart })
  for (const [status, code] of [[501, 'upstream_failed'], [404, 'upstream_not_found'], [400, 'upstream_unauthorized'], [403, 'upstream_unauthorized']] as const) {
    state.refuseTokensNext(1, status)
    await t.rejects(adapter.run(fakeJob('system', { _type: 'Patient' }).ctx), { code, upstreamStatus: status, message: new RegExp(`token endpoint.*${status}`) }, String(status))
  }
  state.refuseTokensNext(100, 503)
  await t.rejects(adapter.run(fakeJob('system', { _type: 'Patient' }).ctx), { code: 'upstream_unavailable', upstreamStatus: 503 }, '503 through the retries')
})
