/**
 * The URL guard's decisions, without a network: which addresses count as public, how UPSTREAM_ALLOWED_ORIGINS
 * is read, which supplied URLs are refused before any connection, and what the filtering lookup answers.
 */
import type { LookupAddress } from 'node:dns'
import t from 'tap'
import { URL_REFUSED_MESSAGE, UrlGuard, isPublicAddress, parseAllowedOrigins, type UrlGuardOptions } from '../../src/upstreams/url-guard.js'

t.test('addresses: only public unicast ones pass, IPv4-mapped IPv6 judged as its IPv4', async t => {
  const refused = [
    // IPv4: RFC 1918, loopback, link-local and the metadata service, unspecified, CGNAT, multicast, broadcast, reserved
    '10.0.0.5', '172.16.0.1', '172.31.255.254', '192.168.1.1', '127.0.0.1', '127.255.255.254', '169.254.169.254',
    '169.254.0.1', '0.0.0.0', '0.1.2.3', '100.64.0.1', '100.127.255.254', '224.0.0.1', '239.255.255.250',
    '255.255.255.255', '240.0.0.1', '192.0.2.10', '198.51.100.7', '203.0.113.9',
    // IPv6: loopback, unspecified, link-local, unique local (fc00::/7), multicast
    '::1', '::', 'fe80::1', 'fe80::abcd:1234', 'fc00::1', 'fd12:3456::1', 'ff02::1', '[::1]',
    // IPv4-mapped spellings of refused IPv4 addresses
    '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:169.254.169.254', '::ffff:a9fe:a9fe', '::ffff:10.0.0.5', '::ffff:192.168.0.1',
    // NAT64, 6to4 and Teredo embed an IPv4 address that cannot be judged here
    '64:ff9b::7f00:1', '2002:7f00:1::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2',
    // not addresses at all
    'localhost', 'metadata.google.internal', '', '127.1', '0x7f.1',
  ]
  for (const address of refused) t.equal(isPublicAddress(address), false, `${address || '(empty)'} is refused`)
  const allowed = ['8.8.8.8', '93.184.216.34', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '2a00:1450:4001:82a::200e', '::ffff:8.8.8.8']
  for (const address of allowed) t.equal(isPublicAddress(address), true, `${address} is public`)
})

t.test('UPSTREAM_ALLOWED_ORIGINS: origins as URL.origin spells them; anything more is refused', async t => {
  t.same(parseAllowedOrigins(undefined), { origins: [] })
  t.same(parseAllowedOrigins(' '), { origins: [] })
  t.same(parseAllowedOrigins('https://Files.Internal:8443, http://10.0.0.7:9000/,https://files.internal:443,https://files.internal'),
    { origins: ['https://files.internal:8443', 'http://10.0.0.7:9000', 'https://files.internal'] }, 'lower-cased, default port dropped, duplicates once')
  for (const bad of ['files.internal:8443', 'ftp://files.internal', 'https://files.internal/exports', 'https://u:p@files.internal', 'https://files.internal?x=1', 'not a url']) {
    const parsed = parseAllowedOrigins(`https://ok.internal,${bad}`)
    t.ok('problem' in parsed, `"${bad}" is refused`)
  }
})

t.test('check(): the configured origin and listed origins are trusted; private literals and other schemes are refused', async t => {
  const guard = new UrlGuard({ allowedOrigins: ['http://10.0.0.7:9000'] })
  const base = 'http://127.0.0.1:4010/api/'
  t.equal(guard.check(new URL('http://127.0.0.1:4010/signed/1?sig=x'), base), 'trusted', 'the upstream\'s own origin, on loopback')
  t.equal(guard.check(new URL('http://10.0.0.7:9000/file.zip'), base), 'trusted', 'an origin listed in UPSTREAM_ALLOWED_ORIGINS')
  t.equal(guard.check(new URL('https://files.example.com/x.zip'), base), 'public', 'a host name: judged on the connection, after DNS')
  t.equal(guard.check(new URL('http://8.8.8.8/x.zip'), base), 'public', 'a public literal')
  const refused = [
    'http://127.0.0.1:4011/', 'http://10.0.0.7:9001/', 'http://169.254.169.254/latest/meta-data/', 'http://[::1]:4010/',
    'http://[::ffff:127.0.0.1]:4010/', 'http://[fe80::1]/', 'http://0x7f000001:4011/', 'http://2130706433/', 'http://0/',
    'file:///etc/passwd', 'ftp://8.8.8.8/',
  ]
  for (const url of refused) {
    t.throws(() => guard.check(new URL(url), base), { code: 'upstream_url_refused', message: URL_REFUSED_MESSAGE }, url)
  }
})

t.test('https only in production, except for origins allowed by name', async t => {
  const guard = new UrlGuard({ allowedOrigins: ['http://files.internal:9000'], httpsOnly: true })
  const base = 'http://127.0.0.1:4010'
  t.throws(() => guard.check(new URL('http://files.example.com/x.zip'), base), { code: 'upstream_url_refused' })
  t.equal(guard.check(new URL('https://files.example.com/x.zip'), base), 'public')
  t.equal(guard.check(new URL('http://127.0.0.1:4010/x.zip'), base), 'trusted', 'the configured origin keeps its scheme')
  t.equal(guard.check(new URL('http://files.internal:9000/x.zip'), base), 'trusted', 'a listed origin keeps its scheme')
  t.equal(new UrlGuard().check(new URL('http://files.example.com/x.zip'), base), 'public', 'plain http is allowed outside production')
})

/** The lookup with a resolver that answers `answers` for every name, called as net.connect calls it. */
function lookupWith (answers: LookupAddress[], options: Parameters<UrlGuard['lookup']>[1]) {
  let calls = 0
  const resolve: UrlGuardOptions['resolve'] = (_hostname, callback) => { calls++; callback(null, answers) }
  const guard = new UrlGuard({ resolve })
  return new Promise<{ err: NodeJS.ErrnoException | null, address: unknown, family?: number, calls: number }>(resolve => {
    guard.lookup('files.example.com', options, (err, address, family) => resolve({ err, address, family, calls }))
  })
}

t.test('the lookup resolves once and refuses a name with any non-public address (DNS rebinding)', async t => {
  const v4 = { address: '93.184.216.34', family: 4 }
  const v6 = { address: '2606:2800:220:1:248:1893:25c8:1946', family: 6 }
  t.match(await lookupWith([v4], {}), { err: null, address: v4.address, family: 4, calls: 1 })
  t.match(await lookupWith([v4, v6], { all: true }), { err: null, address: [v4, v6] }, 'all: true (happy eyeballs) gets every address')
  t.match(await lookupWith([v4, v6], { family: 6 }), { err: null, address: v6.address, family: 6 }, 'the family asked for')
  for (const bad of ['127.0.0.1', '10.1.2.3', '169.254.169.254', '::1', '::ffff:127.0.0.1', 'fd00::1']) {
    const alone = await lookupWith([{ address: bad, family: bad.includes(':') ? 6 : 4 }], {})
    t.match(alone, { err: { code: 'upstream_url_refused', message: URL_REFUSED_MESSAGE }, calls: 1 }, `${bad} is refused`)
    const mixed = await lookupWith([v4, { address: bad, family: bad.includes(':') ? 6 : 4 }], { all: true })
    t.match(mixed, { err: { code: 'upstream_url_refused' } }, `a public address beside ${bad} does not make it acceptable`)
    t.notMatch(String(alone.err?.message), bad, 'the error names no address')
  }
  t.match(await lookupWith([], {}), { err: { code: 'upstream_url_refused' } }, 'no address at all')
})

t.test('UPSTREAM_ALLOWED_ORIGINS in the configuration: parsed at boot, a bad entry stops start-up naming the variable', async t => {
  const { loadConfig } = await import('../../src/config.js')
  t.same(loadConfig({}).UPSTREAM_ALLOWED_ORIGINS, [], 'none by default')
  t.same(loadConfig({ UPSTREAM_ALLOWED_ORIGINS: 'https://exports.internal:8443,http://10.0.0.7:9000' }).UPSTREAM_ALLOWED_ORIGINS,
    ['https://exports.internal:8443', 'http://10.0.0.7:9000'])
  t.throws(() => loadConfig({ UPSTREAM_ALLOWED_ORIGINS: 'https://exports.internal/files' }), { name: 'ConfigError', message: /UPSTREAM_ALLOWED_ORIGINS: .*not an origin/ })
})
