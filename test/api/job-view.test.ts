/**
 * The compiled serialisers of job views answer byte for byte what zod's serialiser answered before them
 * (schema-checked, then JSON.stringify), for any job a row can hold: strings that need escaping, lone
 * surrogates, floats, nulls, free-form params and upstreamInfo, with or without a completion callback.
 */
import fc from 'fast-check'
import t from 'tap'
import { serializerCompiler as zodSerializerCompiler } from 'fastify-type-provider-zod'
import type { Job } from '../../src/generated/prisma/client.js'
import { jobListSchema, jobSchema, jobView, jobViewSerializerCompiler, serializeJobView } from '../../src/api/job-view.js'
import { problemSchema } from '../../src/api/problem.js'

const route = (schema: unknown) => ({ schema, method: 'GET', url: '/jobs/:id', httpStatus: '200' }) as Parameters<typeof jobViewSerializerCompiler>[0]
const viaZod = (schema: unknown) => zodSerializerCompiler(route(schema) as Parameters<typeof zodSerializerCompiler>[0])

const text = fc.string({ unit: 'binary', maxLength: 60 })
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: null })
const int = fc.integer({ min: 0, max: 2_147_483_647 })
const date = fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
// No `__proto__` key: zod's record drops it where a compiled serialiser writes it, and none is ever stored
// (Fastify refuses request bodies that carry one; upstreamInfo's keys are the adapters' own).
const key = text.filter(k => k !== '__proto__')
const json = fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }).filter(o => !JSON.stringify(o).includes('"__proto__"')) as fc.Arbitrary<Record<string, never>>

const job: fc.Arbitrary<Job> = fc.record({
  id: fc.uuid(),
  clientId: text,
  upstream: text,
  resource: text,
  params: maybe(json),
  payload: maybe(json),
  requestHash: maybe(text),
  status: fc.constantFrom('queued', 'running', 'completed', 'failed', 'cancelled', 'expired'),
  checkpoint: maybe(json),
  records: int,
  pagesDone: int,
  pagesTotal: maybe(int),
  percent: maybe(fc.double({ noNaN: true, noDefaultInfinity: true, min: 0, max: 100 })),
  succeeded: maybe(int),
  failed: maybe(int),
  errorCode: maybe(text),
  errorMessage: maybe(text),
  upstreamStatus: maybe(fc.integer({ min: 100, max: 599 })),
  upstreamInfo: maybe(json),
  attempts: int,
  waitingFor: maybe(text),
  waitReason: maybe(text),
  waitUntil: maybe(date),
  leaseOwner: maybe(text),
  leaseExpiresAt: maybe(date),
  runAfter: date,
  createdAt: date,
  startedAt: maybe(date),
  finishedAt: maybe(date),
  expiresAt: maybe(date),
  erasedAt: maybe(date),
  purgePending: fc.boolean(),
  callbackStatus: maybe(fc.constantFrom('pending', 'delivered', 'failed')),
  callbackUrl: maybe(text),
  callbackAttempts: int,
  callbackNextAt: maybe(date),
  callbackLeaseOwner: maybe(text),
  callbackLastError: maybe(text),
})

t.test('a job view serialises as zod serialised it', async t => {
  const zod = viaZod(jobSchema)
  const compiled = jobViewSerializerCompiler(route(jobSchema))
  t.equal(compiled, serializeJobView, 'the job routes use the compiled serialiser for a job')
  fc.assert(fc.property(job, j => {
    const view = jobView(j)
    return serializeJobView(view) === zod(view)
  }), { numRuns: 500 })
})

t.test('a page of job views serialises as zod serialised it', async t => {
  const zod = viaZod(jobListSchema)
  const compiled = jobViewSerializerCompiler(route(jobListSchema))
  fc.assert(fc.property(fc.array(job, { maxLength: 4 }), maybe(text), (jobs, nextCursor) => {
    const page = { data: jobs.map(jobView), nextCursor }
    return compiled(page) === zod(page)
  }), { numRuns: 100 })
})

t.test('other response schemas (problems) keep zod\'s serialiser', async t => {
  const problem = { type: 'tag:bulk-gateway,2026:problem:job_not_found', code: 'job_not_found', title: 'Not Found', status: 404, detail: 'There is no job x.' }
  t.equal(jobViewSerializerCompiler(route(problemSchema))(problem), viaZod(problemSchema)(problem))
  t.throws(() => jobViewSerializerCompiler(route(problemSchema))({ title: 1 }), 'and zod still checks them')
})
