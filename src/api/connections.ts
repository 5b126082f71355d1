/**
 * HTTP connections during shutdown. Node's `server.close()` closes the connections that are idle at that
 * moment and waits for the others: a keep-alive connection whose request was still in flight then stays
 * open until the client drops it (Fastify's keep-alive timeout is 72 s), and so does a connection that has
 * not sent a request yet. Two rules keep the close prompt and bounded:
 *
 * - once the app is closing, every response says `Connection: close`, so its socket ends with it;
 * - whatever is still open at the shutdown deadline is closed, in flight or not (a long NDJSON download,
 *   a client that connected and never asked anything), and again each second until the server has closed.
 *
 * Register it first: its preClose hook must run before the engine's, which may take the whole deadline.
 */
import type { FastifyInstance } from 'fastify'

export function closeConnectionsOnShutdown (app: FastifyInstance, deadlineMs: number): void {
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
    const server = app.server
    if (!server.listening) return
    let interval: NodeJS.Timeout | undefined
    const deadline = setTimeout(() => {
      app.log.warn('shutdown deadline reached; closing the HTTP connections still open')
      server.closeAllConnections()
      interval = setInterval(() => server.closeAllConnections(), 1000)
      interval.unref()
    }, deadlineMs)
    deadline.unref()
    server.once('close', () => {
      clearTimeout(deadline)
      clearInterval(interval)
    })
  })
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close')
  })
}
