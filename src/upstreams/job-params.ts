/**
 * A job's resource and params as its adapter reads them. Params were validated at POST /jobs; parsing them again
 * types them and applies defaults to rows written by an older version. Neither check can fail for a job the API
 * accepted, so a failure is the gateway's own (`internal_error`), and its message names no value.
 */
import type { z } from 'zod'
import { UpstreamError } from '../domain/errors.js'

/** The resource, checked against the upstream's schemas, and its params parsed by the resource's schema. */
export function jobParams<Schemas extends Record<string, z.ZodType>, Resource extends keyof Schemas & string> (
  upstream: string, schemas: Schemas, resource: string, params: unknown
): { resource: Resource, params: z.output<Schemas[Resource]> } {
  if (!Object.hasOwn(schemas, resource)) throw new UpstreamError('internal_error', `${upstream} has no resource "${resource}"`)
  const parsed = (schemas[resource] as z.ZodType).safeParse(params ?? {})
  if (!parsed.success) throw new UpstreamError('internal_error', `the job's params are not valid for ${upstream} ${resource}`)
  return { resource: resource as Resource, params: parsed.data as z.output<Schemas[Resource]> }
}
