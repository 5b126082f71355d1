/**
 * How `POST /jobs` reads its body. Limits depend on the job's upstream, which is in the body itself: the bytes are
 * looked at as they arrive (job-body-scan.ts), so a body is refused as soon as what it has shown is enough to
 * refuse it, never after buffering the largest limit:
 * - a read upstream's job is refused past READ_BODY_LIMIT (from Content-Length once the `upstream` member has
 *   been read, which clients send first), an upstream that takes write operations past WRITE_BODY_LIMIT;
 * - whatever the upstream, everything but a write payload member (`operations`) stays under READ_BODY_LIMIT;
 * - a body nesting deeper than MAX_BODY_DEPTH is refused there, before any parser or recursive walk meets it.
 * A limit by upstream was chosen over a header or a query parameter naming the upstream: the body already
 * names it, and a second place to say it could only disagree with the first.
 *
 * Parsing, validating and hashing a large body takes seconds of CPU (100 000 Clinia operations: JSON.parse,
 * zod, the unstorable-string walk and the canonical hash), so bodies over INLINE_BYTES are prepared in a worker
 * thread and the event loop keeps serving other requests meanwhile. The route's validator then passes the
 * prepared body through, already validated by the same schema.
 */
import type { FastifyInstance, FastifyRequest, FastifySchemaCompiler } from 'fastify'
import type { IncomingMessage } from 'node:http'
import { Piscina } from 'piscina'
import type { z } from 'zod'
import type { Registry } from '../upstreams/registry.js'
import { prepareJobBody, type PreparedJob, type PrepareResult } from './job-body-prepare.js'
import { JobBodyScanner } from './job-body-scan.js'
import { ProblemError } from './problem.js'
import { validatorCompiler } from './validation.js'

/** A read job's whole body: params only (DrChrono's filters, Cliniko's `q`, …), far below this. */
export const READ_BODY_LIMIT = 64 * 1024
/** A write job's body: up to 100 000 Clinia operations (MAX_JOB_OPERATIONS). */
export const WRITE_BODY_LIMIT = 64 * 1024 * 1024
/** Far beyond any real params or operations (a Clinia operation's properties sit at depth 6). */
export const MAX_BODY_DEPTH = 64
/** Bodies up to this are prepared on the event loop: a few milliseconds, less than a trip to a thread. */
export const INLINE_BYTES = 256 * 1024
/** Large bodies that may wait for the preparing thread at once (each holds up to WRITE_BODY_LIMIT). */
const MAX_QUEUED_BODIES = 4

/** The body members that carry write payloads (Clinia's `operations`), of every upstream. */
const payloadFieldsOf = (registry: Registry): ReadonlySet<string> => new Set(registry.upstreams.flatMap(u =>
  Object.values(u.resources).flatMap(r => r.payload === undefined ? [] : [r.payload.field])))

/** The body limit of a job for this upstream; an unknown name gets the read limit (it fails validation anyway). */
export function bodyLimitOf (registry: Registry, upstream: string | null): number {
  return registry.find(upstream)?.kind === 'write' ? WRITE_BODY_LIMIT : READ_BODY_LIMIT
}

const size = (bytes: number): string => bytes >= 1024 * 1024 ? `${bytes / 1024 / 1024} MiB` : `${bytes / 1024} KiB`

/** Why the body seen so far (and announced) must be refused, or null. */
function refusal (registry: Registry, scan: JobBodyScanner, declared: number): ProblemError | null {
  if (scan.outsideBytes > READ_BODY_LIMIT) {
    return new ProblemError('body_too_large', `A job's body may hold at most ${size(READ_BODY_LIMIT)} besides its write operations.`)
  }
  const named = scan.upstream !== undefined
  const limit = named ? bodyLimitOf(registry, scan.upstream ?? null) : WRITE_BODY_LIMIT
  if (Math.max(scan.bytes, named ? declared : 0) <= limit) return null
  const known = registry.find(scan.upstream)
  const whose = known === undefined ? 'A read job\'s' : `A ${known.name} job's`
  return new ProblemError('body_too_large', `${whose} body may be at most ${size(limit)}.`)
}

/**
 * The body's bytes, copied as they arrive into blocks of 1 MiB, each a memory of its own: the copying is spread
 * over the chunks (one Buffer.concat of 36 MB at the end held the event loop for about 270 ms), and the blocks
 * move to the worker thread without a copy.
 */
class ByteBlocks {
  static readonly SIZE = 1024 * 1024
  readonly blocks: Buffer[] = []
  private used = ByteBlocks.SIZE

  push (chunk: Buffer): void {
    for (let from = 0; from < chunk.length;) {
      if (this.used === ByteBlocks.SIZE) {
        this.blocks.push(Buffer.allocUnsafeSlow(ByteBlocks.SIZE))
        this.used = 0
      }
      const copied = chunk.copy(this.blocks[this.blocks.length - 1] as Buffer, this.used, from)
      this.used += copied
      from += copied
    }
  }

  /** The bytes, as views of the blocks (the last one cut to what it holds). */
  parts (): Buffer[] {
    return this.blocks.map((b, i) => i === this.blocks.length - 1 ? b.subarray(0, this.used) : b)
  }
}

/** A body prepared by the parser: the route's validator lets it through (it was validated by the same schema). */
export class PreparedJobBody {
  constructor (readonly job: PreparedJob) {}
}

/** The error Fastify's validation would have raised, so the error handler answers both alike. */
function validationError (issues: unknown[]): Error {
  return Object.assign(new Error('body validation failed'), { validation: issues, validationContext: 'body', statusCode: 400 })
}

/**
 * Registers, in the jobs routes' scope, the JSON parser above and a validator that accepts its prepared bodies.
 * The worker thread starts with the first large body and ends after a minute idle, and with the app.
 */
export function registerJobBodyParser (app: FastifyInstance, registry: Registry): void {
  const payloadFields = payloadFieldsOf(registry)
  let pool: Piscina | undefined
  const here = new URL(import.meta.url)
  const workerFile = new URL(`./job-body-worker${here.pathname.endsWith('.ts') ? '.ts' : '.js'}`, here).href
  app.addHook('onClose', async () => { await pool?.destroy() })

  const prepare = async (body: ByteBlocks, size: number): Promise<PrepareResult> => {
    if (size <= INLINE_BYTES) return prepareJobBody(body.parts(), registry)
    // The thread loads the registry from its module (a Registry cannot cross threads; its module can).
    pool ??= new Piscina({ filename: workerFile, minThreads: 0, maxThreads: 1, idleTimeout: 60_000, workerData: { registryModule: registry.module } })
    // Each waiting body holds up to 64 MiB: a few may wait for the one thread, the rest are refused at once.
    if (pool.queueSize >= MAX_QUEUED_BODIES) {
      throw new ProblemError('large_bodies_busy', `${MAX_QUEUED_BODIES} large job bodies are already waiting on this gateway; retry shortly.`, { headers: { 'Retry-After': '5' } })
    }
    return pool.run(body.parts(), { transferList: body.blocks.map(b => b.buffer as ArrayBuffer) }) as Promise<PrepareResult>
  }

  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', (request: FastifyRequest, payload: IncomingMessage, done: (err: Error | null, body?: unknown) => void) => {
    const routeLimit = request.routeOptions.bodyLimit ?? WRITE_BODY_LIMIT
    const declared = Number(request.headers['content-length'] ?? NaN)
    if (declared > routeLimit) {
      done(new ProblemError('body_too_large', `A job's body may be at most ${size(routeLimit)}.`))
      return
    }
    const scan = new JobBodyScanner(payloadFields)
    const body = new ByteBlocks()
    // As Fastify's own body reader: on a refusal the listeners go and the rest of the body is left to Node,
    // which discards it, so the client still reads the answer.
    const finish = (err: Error | null, body?: unknown): void => {
      payload.removeListener('data', onData)
      payload.removeListener('end', onEnd)
      payload.removeListener('error', onEnd)
      done(err, body)
    }
    function onData (chunk: Buffer): void {
      body.push(chunk)
      if (!scan.write(chunk, MAX_BODY_DEPTH)) {
        finish(new ProblemError('malformed_request', `The body nests deeper than ${MAX_BODY_DEPTH} levels of objects and arrays.`))
        return
      }
      const refused = scan.bytes > routeLimit
        ? new ProblemError('body_too_large', `A job's body may be at most ${size(routeLimit)}.`)
        : refusal(registry, scan, Number.isFinite(declared) ? declared : 0)
      if (refused !== null) finish(refused)
    }
    function onEnd (err?: Error): void {
      if (err !== undefined) {
        finish(err)
        return
      }
      prepare(body, scan.bytes).then(result => {
        if (result.ok) finish(null, new PreparedJobBody(result.job))
        else if ('malformed' in result) finish(new ProblemError('malformed_request', result.malformed))
        else finish(validationError(result.issues))
      }, (failure: unknown) => finish(failure instanceof Error ? failure : new Error(String(failure))))
    }
    payload.on('data', onData)
    payload.on('end', onEnd)
    payload.on('error', onEnd)
    payload.resume()
  })

  const bodyAware: FastifySchemaCompiler<z.ZodType> = route => {
    const inner = validatorCompiler(route)
    if (route.httpPart !== 'body') return inner
    return data => data instanceof PreparedJobBody ? { value: data } : inner(data)
  }
  app.setValidatorCompiler(bodyAware)
}

/** The prepared body of a `POST /jobs` request (its route's body always is one: see registerJobBodyParser). */
export function preparedJob (body: unknown): PreparedJob {
  if (!(body instanceof PreparedJobBody)) throw new Error('POST /jobs received a body its parser did not prepare')
  return body.job
}
