/**
 * The body of `POST /jobs`, built from the registry: a discriminated union on `upstream`, then on `resource`,
 * each branch carrying that resource's own strict params schema. The OpenAPI document shows one schema per
 * upstream and resource, with its example, from this same source.
 */
import { z } from 'zod'
import type { AnyUpstream } from '../upstreams/registry.js'

/** The worked example of a job for one upstream's resource (its params example, and payload example if any). */
export function jobRequestExample (upstream: AnyUpstream, resource: string): Record<string, unknown> {
  const spec = upstream.resources[resource]
  if (spec === undefined) throw new Error(`upstream ${upstream.name} has no resource ${resource}`)
  return {
    upstream: upstream.name,
    resource,
    params: spec.example ?? {},
    ...(spec.payload?.example !== undefined ? { [spec.payload.field]: spec.payload.example } : {}),
  }
}

/** `callback` of `POST /jobs`: where to POST the job's view, signed, when it ends (docs/API.md, "Completion callbacks"). */
export const callbackRequestSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: 'expected an http or https URL' }).max(2048)
    .describe('Where the gateway POSTs the signed `job.completed`, `job.failed` or `job.cancelled` event. Its origin must be listed in CALLBACK_ALLOWED_ORIGINS'),
}).meta({
  id: 'JobCallback',
  description: 'A completion callback: when the job ends, its view is POSTed to `url`, signed as Standard Webhooks v1 with the client\'s secret, ' +
    'and retried until delivered (a `410` stops the retries). The client needs a secret in CALLBACK_SECRETS.',
})

export function jobRequestSchema (upstreams: readonly AnyUpstream[]) {
  const names = upstreams.map(u => u.name)
  const branches = upstreams.map(upstream => {
    const resources = Object.entries(upstream.resources)
    const perResource = resources.map(([resource, spec]) => {
      const shape = {
        upstream: z.literal(upstream.name),
        resource: z.literal(resource),
        // prefault: an omitted params object still gets the schema's own defaults.
        params: spec.params.prefault({}),
        ...(spec.payload !== undefined ? { [spec.payload.field]: spec.payload.schema } : {}),
        callback: callbackRequestSchema.optional(),
      }
      const example = jobRequestExample(upstream, resource)
      return z.strictObject(shape).meta({
        id: `JobRequest_${upstream.name}_${resource}`,
        title: `${upstream.name} ${resource}`,
        description: spec.description,
        examples: [example],
      })
    })
    const [first, ...rest] = perResource
    if (first === undefined) throw new Error(`upstream ${upstream.name} declares no resources`)
    if (rest.length === 0) return first
    return z.discriminatedUnion('resource', [first, ...rest], {
      error: () => `resource must be one of: ${resources.map(([r]) => r).join(', ')}`,
    })
  })
  const [first, ...rest] = branches
  if (first === undefined) throw new Error('no upstreams are registered')
  return z.discriminatedUnion('upstream', [first, ...rest], {
    error: () => `upstream must be one of: ${names.join(', ')}`,
  }).meta({ id: 'JobRequest', description: 'A job: which upstream, which resource, and that resource\'s params.' })
}

export type JobRequestBody = z.output<ReturnType<typeof jobRequestSchema>>
