/** Liveness and readiness for orchestrators: no client key needed. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { ProblemError, problemSchema } from './problem.js'

export const healthRoutes: FastifyPluginAsyncZod = async app => {
  app.get('/health/live', {
    schema: {
      tags: ['health'],
      summary: 'Liveness',
      description: 'The process is up and serving HTTP.',
      security: [],
      response: { 200: z.object({ status: z.literal('ok') }) },
    },
  }, async () => ({ status: 'ok' as const }))

  app.get('/health/ready', {
    schema: {
      tags: ['health'],
      summary: 'Readiness',
      description: 'The database answers and every migration is applied; 503 otherwise.',
      security: [],
      response: { 200: z.object({ status: z.literal('ok'), database: z.literal('ok'), migrations: z.literal('applied') }), 503: problemSchema },
    },
  }, async () => {
    const problem = await app.db.readiness()
    if (problem !== null) throw new ProblemError('not_ready', problem, { headers: { 'Retry-After': '5' } })
    return { status: 'ok' as const, database: 'ok' as const, migrations: 'applied' as const }
  })
}
