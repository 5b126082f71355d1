/**
 * The URL guard inside the shared upstream client, over real loopback HTTP: a URL an upstream supplied reaches
 * a loopback server only when its origin is the upstream's configured one or is listed in
 * UPSTREAM_ALLOWED_ORIGINS. A refused URL opens no TCP connection at all, whether written as an address or as a
 * name that resolves to one (`localhost`, as a rebinding DNS server would answer).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { UpstreamClient } from '../../src/upstreams/http.js'
import { URL_REFUSED_MESSAGE } from '../../src/upstreams/url-guard.js'

/** A plain loopback server that counts what reaches it. */
async function internalServer (t: Test) {
  const seen = { connections: 0, requests: 0 }
  const server: Server = createServer((_req, res) => { seen.requests++; res.end('internal secret') })
  server.on('connection', () => { seen.connections++ })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) }))
  return { seen, port: (server.address() as AddressInfo).port }
}

function clientFor (t: Test, allowedOrigins: string[] = []) {
  const client = new UpstreamClient({ maxAttempts: 1, urlGuard: { allowedOrigins } })
  t.teardown(() => client.destroy())
  return client
}

const get = (client: UpstreamClient, url: string, baseUrl?: string) => client.request({
  method: 'GET', url, signal: new AbortController().signal, upstream: 'ocl', suppliedBy: baseUrl === undefined ? undefined : { baseUrl },
})

/** The configured base URL of the upstream in these tests: another loopback port, never contacted. */
const CONFIGURED = 'http://127.0.0.1:1/api/'

t.test('a supplied URL to a loopback server that is not allowed: refused, and no connection is opened', async t => {
  const internal = await internalServer(t)
  const client = clientFor(t)
  for (const url of [
    `http://127.0.0.1:${internal.port}/file.zip?X-Amz-Signature=s`,
    `http://[::ffff:127.0.0.1]:${internal.port}/file.zip`,
    `http://localhost:${internal.port}/file.zip`, // a name: refused by the lookup, after DNS
  ]) {
    const err = await get(client, url, CONFIGURED).then(() => null, (e: unknown) => e)
    t.match(err, { code: 'upstream_url_refused', message: URL_REFUSED_MESSAGE, upstreamStatus: null }, url)
    t.notMatch((err as Error).message, /127\.0\.0\.1|localhost|::1|\d{4,5}/, 'the message names no address, host or port')
    const stream = await client.stream({
      method: 'GET', url, signal: new AbortController().signal, upstream: 'ocl', suppliedBy: { baseUrl: CONFIGURED },
    }).then(() => null, (e: unknown) => e)
    t.match(stream, { code: 'upstream_url_refused' }, `${url} (stream)`)
  }
  t.same(internal.seen, { connections: 0, requests: 0 }, 'the loopback server saw no connection and no request')
})

t.test('the upstream\'s configured origin, and origins in UPSTREAM_ALLOWED_ORIGINS, are followed', async t => {
  const internal = await internalServer(t)
  const configured = `http://127.0.0.1:${internal.port}/api/`
  const own = await get(clientFor(t), `http://127.0.0.1:${internal.port}/signed/1`, configured)
  t.equal(own.status, 200, 'a link on the configured origin (a sandbox simulator on loopback)')

  const listed = clientFor(t, [`http://localhost:${internal.port}`])
  t.equal((await get(listed, `http://localhost:${internal.port}/file.zip`, CONFIGURED)).status, 200, 'a listed name')
  t.match(await get(listed, `http://127.0.0.1:${internal.port}/file.zip`, CONFIGURED).catch((e: unknown) => e), { code: 'upstream_url_refused' },
    'the listing is by origin: the same server under another host name is not listed')

  const built = await get(clientFor(t), `http://127.0.0.1:${internal.port}/api/list`)
  t.equal(built.status, 200, 'a URL the adapter built from its configured base URL is not a supplied one')
  t.equal(internal.seen.requests, 3)
})
