/** The public base URL: PUBLIC_BASE_URL, or the request's scheme and host plus a trusted proxy's X-Forwarded-Prefix. */
import Fastify from 'fastify'
import t from 'tap'
import { forwardedPrefix, publicBaseUrl, publicBaseUrlOf, trailingSlashRedirect } from '../../src/api/public-url.js'

t.test('X-Forwarded-Prefix: a plain absolute path, trailing slash removed; anything else is ignored', async t => {
  t.equal(forwardedPrefix('/bulk'), '/bulk')
  t.equal(forwardedPrefix('/bulk/'), '/bulk')
  t.equal(forwardedPrefix('/team-a/bulk_gateway.v2/'), '/team-a/bulk_gateway.v2')
  t.equal(forwardedPrefix(' /bulk '), '/bulk', 'whitespace around the value')
  t.equal(forwardedPrefix('/'), '', 'the root is no prefix')
  t.equal(forwardedPrefix(undefined), '')
  t.equal(forwardedPrefix(''), '')
  t.equal(forwardedPrefix('/outer, /inner'), '/inner', 'the last value, set by the nearest proxy, wins')
  t.equal(forwardedPrefix(['/outer', '/inner']), '/inner')
  for (const bad of [
    'bulk', // relative
    '/bulk/../admin', '/..', '/bulk/..', '/./bulk', // dot segments
    '/%2e%2e/admin', '/bulk%2F..', // percent-encoding
    '//evil.example/bulk', 'https://evil.example/bulk', '/bulk//x', // scheme or host
    '/bulk\r\nSet-Cookie: x=1', '/bulk\nx', // header injection
    '/bulk?x=1', '/bulk#x', '/bu lk', '/"bulk"', '/<script>', // not a path segment
    '/' + 'a'.repeat(300), // absurdly long
  ]) {
    t.equal(forwardedPrefix(bad), '', `ignored: ${JSON.stringify(bad)}`)
  }
})

t.test('the base URL: configured wins, the prefix counts only from a trusted proxy', async t => {
  const request = { protocol: 'https', host: 'gw.example.org', forwardedPrefix: '/bulk/' }
  t.equal(publicBaseUrl({ ...request, fromTrustedProxy: true }), 'https://gw.example.org/bulk')
  t.equal(publicBaseUrl({ ...request, fromTrustedProxy: false }), 'https://gw.example.org', 'an untrusted client cannot set it')
  t.equal(publicBaseUrl({ ...request, forwardedPrefix: '/../x', fromTrustedProxy: true }), 'https://gw.example.org', 'an invalid prefix is ignored')
  t.equal(publicBaseUrl({ ...request, forwardedPrefix: undefined, fromTrustedProxy: true }), 'https://gw.example.org')
  t.equal(publicBaseUrl({ ...request, configured: 'https://api.example.org/gw/', fromTrustedProxy: true }), 'https://api.example.org/gw',
    'PUBLIC_BASE_URL is used as it is, trailing slash removed, no prefix added')
})

t.test('from a request: Fastify\'s own trustProxy decision says whether X-Forwarded-Prefix counts', async t => {
  const forwarded = { host: 'gw.internal:3000', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'public.example.org', 'x-forwarded-prefix': '/bulk' }
  const cases: Array<{ trustProxy: boolean | string | number, remoteAddress: string, want: string }> = [
    { trustProxy: false, remoteAddress: '127.0.0.1', want: 'http://gw.internal:3000' },
    { trustProxy: true, remoteAddress: '203.0.113.9', want: 'https://public.example.org/bulk' },
    { trustProxy: '127.0.0.1', remoteAddress: '127.0.0.1', want: 'https://public.example.org/bulk' },
    { trustProxy: '127.0.0.1', remoteAddress: '203.0.113.9', want: 'http://gw.internal:3000' },
    { trustProxy: '10.0.0.0/8, 127.0.0.1', remoteAddress: '10.1.2.3', want: 'https://public.example.org/bulk' },
    { trustProxy: 'loopback', remoteAddress: '127.0.0.1', want: 'https://public.example.org/bulk' },
    // Fastify does not trust X-Forwarded-Proto/Host on a hop count alone; the prefix follows suit.
    { trustProxy: 1, remoteAddress: '127.0.0.1', want: 'http://gw.internal:3000' },
  ]
  for (const { trustProxy, remoteAddress, want } of cases) {
    const app = Fastify({ trustProxy: trustProxy as boolean | string })
    app.get('/base', async request => ({ base: publicBaseUrlOf(request, undefined), configured: publicBaseUrlOf(request, 'https://fixed.example.org') }))
    const res = await app.inject({ url: '/base', headers: forwarded, remoteAddress })
    t.same(res.json(), { base: want, configured: 'https://fixed.example.org' }, `trustProxy ${JSON.stringify(trustProxy)}, peer ${remoteAddress}`)
    const plain = await app.inject({ url: '/base', headers: { host: 'gw.internal:3000' }, remoteAddress })
    t.equal(plain.json().base, 'http://gw.internal:3000', 'no forwarded headers: the request\'s own scheme and host')
    await app.close()
  }
})

t.test('the slash redirect sends only the bare path on, relatively, query kept', async t => {
  const app = Fastify()
  const hook = trailingSlashRedirect('/docs')
  app.register(async docs => {
    docs.addHook('onRequest', hook)
    docs.get('/', async () => 'index')
    docs.get('/json', async () => 'json')
  }, { prefix: '/docs' })
  await app.ready()
  const bare = await app.inject({ url: '/docs' })
  t.equal(bare.statusCode, 302)
  t.equal(bare.headers.location, 'docs/', 'relative: /bulk/docs resolves to /bulk/docs/')
  t.equal((await app.inject({ url: '/docs?x=1' })).headers.location, 'docs/?x=1')
  t.equal((await app.inject({ url: '/docs/' })).body, 'index')
  t.equal((await app.inject({ url: '/docs/json' })).body, 'json')
  await app.close()
})
