/**
 * One error shape for every route: RFC 9457 problem+json. Validation failures list each invalid field with a
 * JSON pointer; unexpected errors say nothing of their internals (no stack, SQL or upstream data).
 */
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { PROBLEM_TYPES, codeForClientStatus, problemTypeUri, type ProblemCode } from './problem-codes.js'

/** One invalid field: where it is (`in`), its JSON pointer inside that part, and what is wrong. */
export interface FieldError { in: 'body' | 'query' | 'path' | 'header', pointer: string, detail: string }

/** An error a client caused (or may retry), answered as problem+json with its code's status and title. */
export class ProblemError extends Error {
  readonly status: number
  readonly errors?: FieldError[]
  readonly headers?: Record<string, string>

  constructor (readonly code: ProblemCode, detail: string, extra: { errors?: FieldError[], headers?: Record<string, string> } = {}) {
    super(detail)
    this.name = 'ProblemError'
    this.status = PROBLEM_TYPES[code].status
    this.errors = extra.errors
    this.headers = extra.headers
  }
}

export const problemSchema = z.object({
  type: z.string().describe('A URI naming the problem type, one per `code` (`tag:bulk-gateway,2026:problem:<code>`)'),
  code: z.enum(Object.keys(PROBLEM_TYPES) as [ProblemCode, ...ProblemCode[]]).describe('The stable code of the problem (docs/API.md, "Problem codes", lists them): branch on it, not on `detail`'),
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

export function sendProblem (reply: FastifyReply, code: ProblemCode, detail: string, extra: {
  errors?: FieldError[],
  headers?: Record<string, string>,
} = {}): FastifyReply {
  reply.header('content-type', 'application/problem+json; charset=utf-8')
  for (const [name, value] of Object.entries(extra.headers ?? {})) reply.header(name, value)
  return reply.code(PROBLEM_TYPES[code].status).serializer(JSON.stringify).send(problemBody(code, detail, extra.errors))
}

/** The body of a problem with this code. */
export function problemBody (code: ProblemCode, detail: string, errors?: FieldError[]): Problem {
  const { status, title } = PROBLEM_TYPES[code]
  const body: Problem = { type: problemTypeUri(code), code, title, status, detail }
  if (errors !== undefined) body.errors = errors
  return body
}

const parts: Record<string, FieldError['in']> = { body: 'body', querystring: 'query', params: 'path', headers: 'header' }

/** The error handler of every route (registered by registerProblemHandlers). */
function answerError (err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof ProblemError) {
    return sendProblem(reply, err.code, err.message, { errors: err.errors, headers: err.headers })
  }
  if (Array.isArray(err.validation)) {
    const where = parts[err.validationContext ?? 'body'] ?? 'body'
    const seen = new Set<string>()
    const errors = err.validation
      .map(v => ({ in: where, pointer: v.instancePath === '/' ? '' : v.instancePath, detail: v.message ?? 'invalid' }))
      .filter(e => !seen.has(e.pointer + '\n' + e.detail) && seen.add(e.pointer + '\n' + e.detail))
    const fields = errors.map(e => e.pointer || '(the whole ' + where + ')').join(', ')
    return sendProblem(reply, 'validation_failed', `The request ${where} is invalid: ${fields}`, { errors })
  }
  const status = err.statusCode ?? 500
  if (status >= 400 && status < 500) {
    // Fastify's own client errors: unparsable JSON, body too large, unsupported content type, …
    return sendProblem(reply, codeForClientStatus(status), err.message)
  }
  // The stack only at debug: at info a log line says what failed, never where in the code (nor what data it held).
  // (Not under pino's `err` key, whose serializer adds a `stack` member of its own.)
  request.log.error({ failure: { message: err.message, code: err.code } }, 'request failed')
  request.log.debug({ failure: { stack: err.stack } }, 'request failed: stack')
  return sendProblem(reply, 'internal_error', 'The gateway failed to handle this request. It has been logged.')
}

/** Registers the error and not-found handlers on the root instance. */
export function registerProblemHandlers (app: FastifyInstance): void {
  app.setErrorHandler(answerError)
  app.setNotFoundHandler((request, reply) => sendProblem(reply, 'route_not_found', `No route for ${request.method} ${request.url.split('?')[0]}`))
}

/**
 * Fastify's frameworkErrors: what its router refuses before any route, hook or error handler runs, which it would
 * otherwise answer with a JSON body of its own. A path whose percent-encoding does not decode (FST_ERR_BAD_URL)
 * is the client's malformed request (400); the rest (a path parameter beyond maxParamLength: 414) keep the
 * status Fastify gives them, as problems.
 */
export function answerFrameworkError (err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err.code === 'FST_ERR_BAD_URL') {
    return sendProblem(reply, 'malformed_request', 'The request path is not valid: a percent-encoded sequence in it does not decode to UTF-8.')
  }
  return answerError(err, request, reply)
}

/**
 * Fastify's clientErrorHandler: errors Node meets before there is a request to route (the whole request did not
 * arrive within REQUEST_TIMEOUT_SECONDS, headers too large, unparsable HTTP), answered as problem+json too.
 */
export function answerClientError (err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [code, detail]: [ProblemCode, string] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? ['request_timeout', 'The request did not arrive in time.']
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? ['headers_too_large', 'The request headers are too large.']
      : ['malformed_request', 'The request is not valid HTTP.']
  const { status, title } = PROBLEM_TYPES[code]
  const body = JSON.stringify(problemBody(code, detail))
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}
