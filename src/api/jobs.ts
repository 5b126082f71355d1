/** Routes of the job API: submit, read, list and cancel jobs. Results are in results.ts. */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { JobRead, JobSummary } from '../domain/job.js'
import { IdempotencyConflictError, TooManyActiveJobsError } from '../domain/errors.js'
import type { Registry } from '../upstreams/registry.js'
import { MAX_BODY_DEPTH, READ_BODY_LIMIT, WRITE_BODY_LIMIT, preparedJob, registerJobBodyParser } from './job-body.js'
import { jobRequestSchema } from './job-request.js'
import { jobListSchema, jobSchema, jobStatusSchema, jobView, jobViewSerializerCompiler, progressText, serializeJobView } from './job-view.js'
import { decodeCursor, encodeCursor } from './cursors.js'
import { isJobId } from './job-ids.js'
import { checkCallback, type CallbackPolicy } from './callback-check.js'
import { ProblemError, problemSchema } from './problem.js'

const idParams = z.object({ id: z.string().describe('The job id') })
const errors = { 400: problemSchema, 401: problemSchema, 404: problemSchema }
const listCursor = z.object({ t: z.string(), id: z.string().refine(isJobId) })
const jsonType = 'application/json; charset=utf-8'

/** The job, or a 404 for a malformed id, a missing job and another client's job alike. */
export async function findJobOr404 (request: FastifyRequest, id: string): Promise<JobRead> {
  const job = isJobId(id) ? await request.server.jobs.get(request.clientId, id) : null
  if (job === null) throw new ProblemError('job_not_found', `There is no job ${id}.`)
  return job
}

/** While a job is in flight: when to ask again, and a line of progress. */
function addPollingHeaders (reply: FastifyReply, job: JobSummary): void {
  if (job.status !== 'queued' && job.status !== 'running') return
  reply.header('Retry-After', job.status === 'queued' ? '1' : '2')
  reply.header('X-Progress', progressText(job))
}

export const jobRoutes: FastifyPluginAsyncZod<{ registry: Registry, callbacks: CallbackPolicy }> = async (app, { registry, callbacks }) => {
  const body = jobRequestSchema(registry.upstreams)
  // This plugin's own scope: job views go through compiled serialisers, problems still through zod's.
  app.setSerializerCompiler(jobViewSerializerCompiler)
  // POST /jobs bodies: limits by upstream while reading, large ones prepared off the event loop (job-body.ts).
  registerJobBodyParser(app, registry)

  app.post('/jobs', {
    // The largest body of any upstream: write jobs carry their operations (up to 100 000 Clinia operations).
    // Each upstream's own limit is applied while the body is read (job-body.ts).
    bodyLimit: WRITE_BODY_LIMIT,
    schema: {
      tags: ['jobs'],
      summary: 'Start a bulk job',
      description: 'Validates the body against the upstream\'s own schema, then queues the job and answers at once. ' +
        'A replay with the same `Idempotency-Key` (and a JSON-equal body) returns the same job with 200; an identical read job ' +
        'still queued or running is returned with 200 instead of starting a second one. ' +
        `A read job's body may be at most ${READ_BODY_LIMIT / 1024} KiB, a write job's ${WRITE_BODY_LIMIT / 1024 / 1024} MiB (413 beyond), ` +
        `nested at most ${MAX_BODY_DEPTH} deep (400 beyond). A client with MAX_ACTIVE_JOBS_PER_CLIENT queued or running jobs ` +
        'gets 429 `too_many_active_jobs` for a new one (a replay or an in-flight twin still answers 200). ' +
        'With `callback`, the job\'s view is POSTed to `callback.url` when it ends, signed as Standard Webhooks v1 (docs/API.md, "Completion callbacks").',
      headers: z.object({
        'idempotency-key': z.string().min(1).max(255).optional().describe('Makes retries of this POST safe: the same key returns the same job'),
      }),
      body,
      response: { 200: jobSchema, 202: jobSchema, ...errors, 413: problemSchema, 422: problemSchema, 429: problemSchema },
    },
  }, async (request, reply) => {
    const { upstream, resource, params, payloadJsonb, hash, callbackUrl } = preparedJob(request.body)
    if (!app.upstreams.list.some(u => u.definition.name === upstream)) {
      const detail = `upstream ${upstream} is not enabled on this gateway (it serves ${app.upstreams.list.map(u => u.definition.name).join(', ')})`
      throw new ProblemError('validation_failed', detail, { errors: [{ in: 'body', pointer: '/upstream', detail }] })
    }
    if (callbackUrl !== null) checkCallback(callbacks, request.clientId, callbackUrl)
    try {
      const { job, created } = await app.jobs.create({
        clientId: request.clientId,
        upstream,
        resource,
        params,
        payloadJsonb,
        hash,
        idempotencyKey: request.headers['idempotency-key'] ?? null,
        callbackUrl,
      })
      request.log.info({ jobId: job.id, upstream, resource, created }, created ? 'job queued' : 'existing job returned')
      reply.header('Location', `${app.publicBaseUrl(request)}/jobs/${job.id}`)
      addPollingHeaders(reply, job)
      return reply.code(created ? 202 : 200).send(jobView(job))
    } catch (err) {
      if (err instanceof IdempotencyConflictError) {
        throw new ProblemError('idempotency_key_reused', err.message, { errors: [{ in: 'header', pointer: '/Idempotency-Key', detail: err.message }] })
      }
      if (err instanceof TooManyActiveJobsError) {
        throw new ProblemError('too_many_active_jobs', `This client already has ${err.limit} queued or running jobs, the most it may have at once: submit more when some have finished.`)
      }
      throw err
    }
  })

  app.get('/jobs', {
    schema: {
      tags: ['jobs'],
      summary: 'List your jobs',
      description: 'The calling client\'s jobs, newest first, cursor-paginated.',
      querystring: z.object({
        limit: z.coerce.number().int().min(1).max(100).default(20),
        cursor: z.string().optional().describe('`nextCursor` of the previous page'),
        status: jobStatusSchema.optional().describe('Jobs that read this status now: a completed job past its `expiresAt` is `expired`'),
        // Every upstream the gateway knows, not only those UPSTREAMS serves now: jobs of one since taken out of
        // UPSTREAMS stay listable. A name no job can have is the client's mistake (400), not an empty page.
        upstream: z.enum(registry.names).optional(),
      }),
      response: { 200: jobListSchema, ...errors },
    },
  }, async request => {
    const { limit, cursor, status, upstream } = request.query
    let before = null
    if (cursor !== undefined) {
      const decoded = decodeCursor(cursor, listCursor)
      if (decoded === null || Number.isNaN(Date.parse(decoded.t))) {
        throw new ProblemError('invalid_cursor', 'The cursor is not one this API gave out.', { errors: [{ in: 'query', pointer: '/cursor', detail: 'invalid cursor' }] })
      }
      before = { createdAt: new Date(decoded.t), id: decoded.id }
    }
    const jobs = await app.jobs.list(request.clientId, { limit: limit + 1, before, status, upstream })
    const page = jobs.slice(0, limit)
    const last = page.at(-1)
    const nextCursor = jobs.length > limit && last !== undefined ? encodeCursor({ t: last.createdAt.toISOString(), id: last.id }) : null
    return { data: page.map(jobView), nextCursor }
  })

  app.get('/jobs/:id', {
    schema: {
      tags: ['jobs'],
      summary: 'Read a job',
      description: 'The job\'s status and progress. While it is queued or running the answer carries `Retry-After` (seconds) and `X-Progress`.',
      params: idParams,
      response: { 200: jobSchema, ...errors },
    },
  }, async (request, reply) => {
    // A finished job's view is served from this process's cache when it can be (see job-view-cache.ts). A view
    // depends on the job alone (its links are relative), so one cached text serves every request of its owner.
    const views = app.jobs.views
    const cached = views.get(request.clientId, request.params.id)
    if (cached !== undefined) return (reply as FastifyReply).type(jsonType).send(cached)
    const since = views.generation()
    const job = await findJobOr404(request, request.params.id)
    addPollingHeaders(reply, job)
    const json = serializeJobView(jobView(job))
    views.set(since, job, json)
    return (reply as FastifyReply).type(jsonType).send(json)
  })

  app.delete('/jobs/:id', {
    schema: {
      tags: ['jobs'],
      summary: 'Cancel a job',
      description: 'A queued or running job becomes `cancelled` and its upstream work stops; a completed job\'s results are dropped early ' +
        'and it becomes `expired`; other finished jobs are unchanged. Idempotent.',
      params: idParams,
      response: { 202: jobSchema, ...errors },
    },
  }, async (request, reply) => {
    await findJobOr404(request, request.params.id)
    const job = await app.jobs.cancel(request.clientId, request.params.id)
    if (job === null) throw new ProblemError('job_not_found', `There is no job ${request.params.id}.`)
    request.log.info({ jobId: job.id, status: job.status }, 'job cancel requested')
    return reply.code(202).send(jobView(job))
  })
}
