/**
 * Closing the app (SIGTERM in production) must not wait on HTTP connections: Node's server.close() waits for
 * every connection that is not idle at that moment, and one that never sent a request is never idle.
 */
import net from 'node:net'
import t from 'tap'
import { startGateway } from '../helpers/gateway.js'

/** Resolves when the server holds `n` connections. */
async function connections (server: net.Server, n: number): Promise<void> {
  for (;;) {
    const count = await new Promise<number>((resolve, reject) => server.getConnections((err, c) => { if (err) reject(err); else resolve(c) }))
    if (count === n) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** Fails the test with a message, rather than at tap's timeout, when `p` hangs (this is no speed claim). */
async function settles<T> (p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what} still pending after ${ms} ms`)), ms) })
  try {
    return await Promise.race([p, hang])
  } finally {
    clearTimeout(timer)
  }
}

t.test('a connection that never sends a request is closed at the shutdown deadline', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { SHUTDOWN_TIMEOUT_SECONDS: '1' } })
  const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
  socket.on('error', () => {})
  const socketClosed = new Promise(resolve => socket.on('close', resolve))
  await connections(gw.app.server, 1)
  await settles(gw.app.close(), 'app.close()')
  t.pass('app.close() resolved')
  await settles(socketClosed, 'the silent socket')
  t.pass('the silent connection was closed by the server')
  t.ok(gw.logs.some(l => l.includes('shutdown deadline reached; closing the HTTP connections still open')), 'and the log says so')
})

t.test('a request in flight when shutdown begins is answered with Connection: close', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { SHUTDOWN_TIMEOUT_SECONDS: '60' } })
  const body = JSON.stringify({ upstream: 'no-such-upstream', resource: 'x' })
  const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
  socket.on('error', () => {})
  let response = ''
  socket.on('data', chunk => { response += String(chunk) })
  const socketClosed = new Promise(resolve => socket.on('close', resolve))
  await new Promise(resolve => socket.on('connect', resolve))
  // Headers and half the body: the request is in flight, waiting for the rest.
  socket.write('POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer alpha-key-0123456789\r\n' +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: keep-alive\r\n\r\n` + body.slice(0, 10))
  while (!gw.logs.some(l => l.includes('incoming request'))) await new Promise(resolve => setTimeout(resolve, 20))

  const closing = gw.app.close()
  while (gw.app.server.listening) await new Promise(resolve => setTimeout(resolve, 20))
  socket.write(body.slice(10))
  await settles(socketClosed, 'the keep-alive connection')
  t.match(response, /^HTTP\/1\.1 400 /, 'the request was still answered')
  t.match(response, /\r\nconnection: close\r\n/i, 'with Connection: close')
  await settles(closing, 'app.close()')
  t.notOk(gw.logs.some(l => l.includes('shutdown deadline reached')), 'the server closed without waiting for its deadline')
})

t.test('the upstream client is dropped once the workers stopped, before the server closes', async t => {
  // Sandbox mode: adapters call this very server, so the upstream client's idle sockets are connections to
  // it; one that never carried a request would hold server.close() up.
  const gw = await startGateway(t, { env: { SANDBOX: 'true', SHUTDOWN_TIMEOUT_SECONDS: '60' } })
  let destroyedFirst: boolean | null = null
  gw.app.server.once('close', () => { destroyedFirst = gw.app.upstreams.client.destroyed })
  await settles(gw.app.close(), 'app.close()')
  t.equal(destroyedFirst, true, 'the upstream client was destroyed when the server closed')
})
