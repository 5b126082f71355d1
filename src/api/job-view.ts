/** The public representation of a job (docs/API.md), its JSON serialisers, and the cursors clients page with. */
import type { FastifySerializerCompiler } from 'fastify'
import fastJson from 'fast-json-stringify'
import { serializerCompiler as zodSerializerCompiler } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { JobSummary } from '../domain/job.js'
import { JOB_ERROR_CODES } from '../domain/errors.js'

const timestamp = z.string().describe('ISO 8601 date-time')

export const jobStatusSchema = z.enum(['queued', 'running', 'completed', 'failed', 'cancelled', 'expired'])

export const jobSchema = z.object({
  id: z.string().describe('The job id (a UUID)'),
  upstream: z.string(),
  resource: z.string(),
  params: z.record(z.string(), z.unknown()).nullable().describe('The validated params, defaults included; null from `expiresAt` on, when they are erased (they may hold patient data)'),
  status: jobStatusSchema,
  progress: z.object({
    records: z.number().int().describe('Records stored so far'),
    pagesDone: z.number().int(),
    pagesTotal: z.number().int().nullable().describe('Known once the upstream has told'),
    percent: z.number().nullable(),
    succeeded: z.number().int().nullable().describe('Write jobs: operations the upstream applied; null for reads'),
    failed: z.number().int().nullable().describe('Write jobs: operations the upstream refused; null for reads'),
  }),
  error: z.object({
    code: z.string().describe(`A stable code: ${Object.entries(JOB_ERROR_CODES).map(([code, when]) => `\`${code}\` (${when})`).join('; ')}. New codes may be added.`),
    message: z.string().nullable().describe('What went wrong, in words; null from `expiresAt` on, when it is erased (the code and upstreamStatus stay)'),
    upstreamStatus: z.number().int().nullable().describe('The upstream HTTP status behind the failure, when there was one'),
  }).nullable(),
  upstreamInfo: z.record(z.string(), z.unknown()).nullable().describe('Facts about the upstream run (e.g. OCL lastUpdated); null when none, and from `expiresAt` on (erased)'),
  createdAt: timestamp,
  startedAt: timestamp.nullable(),
  completedAt: timestamp.nullable().describe('When the job reached a terminal state (completed, failed or cancelled)'),
  expiresAt: timestamp.nullable().describe('When its results are deleted: completedAt + RESULT_TTL_SECONDS. From then on a completed job reads `expired`, its results answer 410, and `params`, `upstreamInfo` and `error.message` read null (erased); the job itself is deleted JOB_RETENTION_DAYS after completedAt'),
  callback: z.object({
    status: z.enum(['pending', 'delivered', 'failed']).describe('`pending` until the job has ended and a receiver answered 2xx (`delivered`), or answered 410 or the last retry failed (`failed`)'),
    attempts: z.number().int().describe('Attempts made so far'),
    lastError: z.string().nullable().describe('Why the last attempt failed, in the gateway\'s words; null before the first attempt and once delivered'),
  }).nullable().describe('The completion callback the job was submitted with; null when it has none'),
  links: z.object({ self: z.string(), results: z.string() }),
}).meta({ id: 'Job', description: 'A bulk job: fields are always present, null until they apply.' })

export type JobView = z.infer<typeof jobSchema>

/** GET /jobs: a page of the client's jobs. */
export const jobListSchema = z.object({ data: z.array(jobSchema), nextCursor: z.string().nullable() })

/**
 * A serialiser compiled (fast-json-stringify) from the JSON schema zod derives for `schema`, the one the OpenAPI
 * document shows. Zod's own serialiser checks every response against the schema before JSON.stringify, which
 * costs more than the stringify; these views are built by jobView, whose type is the schema's.
 */
function compiledSerializer<T> (schema: z.ZodType<T>): (value: T) => string {
  return fastJson(z.toJSONSchema(schema, { target: 'draft-07', io: 'output' }) as fastJson.AnySchema) as (value: T) => string
}

/** The JSON text of a job view, byte for byte what JSON.stringify gives for it. */
export const serializeJobView = compiledSerializer(jobSchema)

const compiledSerializers = new Map<unknown, (value: never) => string>([
  [jobSchema, serializeJobView],
  [jobListSchema, compiledSerializer(jobListSchema)],
])

/**
 * The serialiser compiler of the job routes: compiled serialisers for job views and pages of them, zod's for
 * any other response schema (problems).
 */
export const jobViewSerializerCompiler: FastifySerializerCompiler<z.ZodType> = route =>
  (compiledSerializers.get(route.schema) as ((data: unknown) => string) | undefined) ?? zodSerializerCompiler(route)

const iso = (d: Date | null): string | null => d === null ? null : d.toISOString()

export function jobView (job: JobSummary): JobView {
  const percent = job.status === 'completed' || job.status === 'expired'
    ? 100
    : job.percent ?? (job.pagesTotal !== null && job.pagesTotal > 0 ? Math.round(1000 * job.pagesDone / job.pagesTotal) / 10 : null)
  return {
    id: job.id,
    upstream: job.upstream,
    resource: job.resource,
    params: (job.params as Record<string, unknown> | null) ?? null,
    status: job.status,
    progress: { records: job.records, pagesDone: job.pagesDone, pagesTotal: job.pagesTotal, percent, succeeded: job.succeeded, failed: job.failed },
    error: job.errorCode === null ? null : { code: job.errorCode, message: job.errorMessage, upstreamStatus: job.upstreamStatus },
    upstreamInfo: (job.upstreamInfo as Record<string, unknown> | null) ?? null,
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    completedAt: iso(job.finishedAt),
    expiresAt: iso(job.expiresAt),
    callback: job.callbackStatus === null || job.callbackStatus === undefined
      ? null
      : { status: job.callbackStatus, attempts: job.callbackAttempts, lastError: job.callbackLastError },
    links: { self: `/jobs/${job.id}`, results: `/jobs/${job.id}/results` },
  }
}

/** A short human line for `X-Progress`. */
export function progressText (job: JobSummary, now: number = Date.now()): string {
  if (job.status === 'queued') return 'queued'
  const pages = job.pagesTotal !== null ? `page ${job.pagesDone} of ${job.pagesTotal}` : `${job.pagesDone} pages`
  const line = `${pages}, ${job.records} records`
  // Header values are ASCII: a reason names an upstream's budget in plain words, and is cut short to be sure.
  if (job.status === 'running' && job.waitReason !== null && job.waitUntil !== null && job.waitUntil.getTime() > now) {
    const reason = job.waitReason.replace(/[^\x20-\x7e]/g, '').slice(0, 120)
    return `${line}; waiting for ${reason} until ${job.waitUntil.toISOString().replace(/\.\d{3}Z$/, 'Z')}`
  }
  return line
}
