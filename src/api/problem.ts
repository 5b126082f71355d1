/**
 * One error shape for every route: RFC 9457 problem+json. Validation failures list each invalid field with a
 * JSON pointer; unexpected errors say nothing of their internals (no stack, SQL or upstream data).
 */
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'

/** One invalid field: where it is (`in`), its JSON pointer inside that part, and what is wrong. */
export interface FieldError { in: 'body' | 'query' | 'path' | 'header', pointer: string, detail: string }

/** An error a client caused (or may retry), answered as problem+json with `status`. */
export class ProblemError extends Error {
  constructor (
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(detail)
    this.name = 'ProblemError'
  }
}

export const problemSchema = z.object({
  type: z.string().describe('A URI naming the problem type; `about:blank` when the status says it all'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  errors: z.array(z.object({
    in: z.enum(['body', 'query', 'path', 'header']),
    pointer: z.string().describe('JSON pointer to the invalid field inside that part of the request, e.g. /params/since'),
    detail: z.string(),
  })).optional().describe('Present on validation failures: one entry per invalid field'),
}).meta({ id: 'Problem', description: 'An RFC 9457 problem: every error of every route has this shape.' })

export type Problem = z.infer<typeof problemSchema>

const titles: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 405: 'Method Not Allowed', 406: 'Not Acceptable',
  408: 'Request Timeout', 409: 'Conflict', 410: 'Gone', 413: 'Content Too Large', 414: 'URI Too Long', 415: 'Unsupported Media Type', 422: 'Unprocessable Content',
  429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 503: 'Service Unavailable',
}

export function sendProblem (reply: FastifyReply, status: number, detail: string, extra: { title?: string, errors?: FieldError[], headers?: Record<string, string> } = {}): FastifyReply {
  const body: Problem = { type: 'about:blank', title: extra.title ?? titles[status] ?? 'Error', status, detail }
  if (extra.errors !== undefined) body.errors = extra.errors
  for (const [name, value] of Object.entries(extra.headers ?? {})) reply.header(name, value)
  return reply.code(status).type('application/problem+json; charset=utf-8').serializer(JSON.stringify).send(body)
}

const parts: Record<string, FieldError['in']> = { body: 'body', querystring: 'query', params: 'path', headers: 'header' }

/** The error handler of every route (registered by registerProblemHandlers). */
function answerError (err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof ProblemError) {
    return sendProblem(reply, err.status, err.message, { title: err.title, errors: err.errors, headers: err.headers })
  }
  if (Array.isArray(err.validation)) {
    const where = parts[err.validationContext ?? 'body'] ?? 'body'
    const seen = new Set<string>()
    const errors = err.validation
      .map(v => ({ in: where, pointer: v.instancePath === '/' ? '' : v.instancePath, detail: v.message ?? 'invalid' }))
      .filter(e => !seen.has(e.pointer + '\n' + e.detail) && seen.add(e.pointer + '\n' + e.detail))
    const fields = errors.map(e => e.pointer || '(the whole ' + where + ')').join(', ')
    return sendProblem(reply, 400, `The request ${where} is invalid: ${fields}`, { errors })
  }
  const status = err.statusCode ?? 500
  if (status >= 400 && status < 500) {
    // Fastify's own client errors: unparsable JSON, body too large, unsupported content type, …
    return sendProblem(reply, status, err.message)
  }
  request.log.error({ err: { message: err.message, code: err.code, stack: err.stack } }, 'request failed')
  return sendProblem(reply, 500, 'The gateway failed to handle this request. It has been logged.')
}

/** Registers the error and not-found handlers on the root instance. */
export function registerProblemHandlers (app: FastifyInstance): void {
  app.setErrorHandler(answerError)
  app.setNotFoundHandler((request, reply) => sendProblem(reply, 404, `No route for ${request.method} ${request.url.split('?')[0]}`))
}

/**
 * Fastify's frameworkErrors: what its router refuses before any route, hook or error handler runs, which it would
 * otherwise answer with a JSON body of its own. A path whose percent-encoding does not decode (FST_ERR_BAD_URL)
 * is the client's malformed request (400); the rest (a path parameter beyond maxParamLength: 414) keep the
 * status Fastify gives them, as problems.
 */
export function answerFrameworkError (err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err.code === 'FST_ERR_BAD_URL') {
    return sendProblem(reply, 400, 'The request path is not valid: a percent-encoded sequence in it does not decode to UTF-8.')
  }
  return answerError(err, request, reply)
}

/**
 * Fastify's clientErrorHandler: errors Node meets before there is a request to route (the whole request did not
 * arrive within REQUEST_TIMEOUT_SECONDS, headers too large, unparsable HTTP), answered as problem+json too.
 */
export function answerClientError (err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [status, detail] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? [408, 'The request did not arrive in time.']
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'The request headers are too large.']
      : [400, 'The request is not valid HTTP.']
  const title = titles[status] ?? 'Error'
  const body = JSON.stringify({ type: 'about:blank', title, status, detail } satisfies Problem)
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}
