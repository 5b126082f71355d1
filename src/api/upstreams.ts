/** `GET /upstreams`: what a client can ask for, with each resource's params as JSON Schema. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { problemSchema } from './problem.js'

const upstreamSchema = z.object({
  name: z.string(),
  kind: z.enum(['read', 'write']),
  description: z.string(),
  mode: z.enum(['live', 'sandbox', 'unconfigured']).describe('live: the real upstream; sandbox: the built-in simulator; unconfigured: jobs fail with upstream_not_configured'),
  resources: z.array(z.object({
    name: z.string(),
    description: z.string(),
    params: z.record(z.string(), z.unknown()).describe('JSON Schema of the resource\'s params'),
  })),
}).meta({ id: 'Upstream' })

export const upstreamRoutes: FastifyPluginAsyncZod = async app => {
  // Computed once: the registry and the modes do not change while the process runs.
  const data = app.upstreams.list.map(({ definition, mode }) => ({
    name: definition.name,
    kind: definition.kind,
    description: definition.description,
    mode,
    resources: Object.entries(definition.resources).map(([name, spec]) => ({
      name,
      description: spec.description,
      params: z.toJSONSchema(spec.params, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>,
    })),
  }))

  app.get('/upstreams', {
    schema: {
      tags: ['upstreams'],
      summary: 'List upstreams',
      description: 'Every upstream this gateway serves, whether it is live or served by its simulator, and its resources with their params schemas.',
      response: { 200: z.object({ data: z.array(upstreamSchema) }), 401: problemSchema },
    },
  }, async () => ({ data }))
}
