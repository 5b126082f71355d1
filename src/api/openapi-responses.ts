/**
 * What the route schemas cannot say on their own, added to the generated OpenAPI document:
 * - errors are `application/problem+json` (routes declare their Problem responses as plain JSON);
 * - the answers every rate-limited route can give (429), the body-carrying ones (408, 413, 415) and those with
 *   a path parameter (414);
 * - `POST /jobs`'s worked examples, one per upstream and resource, on the media type itself, where Swagger
 *   UI offers them in its "Examples" menu (examples on the nested oneOf schemas never reach "Try it out").
 */
import type { AnyUpstream } from '../upstreams/registry.js'
import { jobRequestExample } from './job-request.js'
import { exemptFromRateLimits } from './rate-limit.js'

interface Response { description?: string, headers?: Record<string, unknown>, content?: Record<string, unknown> }
interface Operation { requestBody?: { content?: Record<string, Record<string, unknown>> }, responses?: Record<string, Response> }
interface Document { paths?: Record<string, Record<string, Operation>> }

const problem = { schema: { $ref: '#/components/schemas/Problem' } }
const integerHeader = (description: string) => ({ description, schema: { type: 'integer', minimum: 0 } })

const added: Record<string, Response> = {
  408: { description: 'Request Timeout: the whole request did not arrive within REQUEST_TIMEOUT_SECONDS' },
  413: { description: 'Content Too Large: the body is over this route\'s limit (`body_too_large`)' },
  414: { description: 'URI Too Long: a path parameter is longer than any valid value (`uri_too_long`)' },
  415: { description: 'Unsupported Media Type: the body\'s Content-Type is not one this route reads (`unsupported_media_type`)' },
  429: {
    description: 'Too Many Requests: over the rate limit (per client key; per IP without one)',
    headers: {
      'Retry-After': integerHeader('Seconds until the limit resets'),
      'RateLimit-Limit': integerHeader('Requests allowed per window'),
      'RateLimit-Remaining': integerHeader('Requests left in this window'),
      'RateLimit-Reset': integerHeader('Seconds until the window resets'),
    },
  },
}

const titles: Record<string, string> = {
  400: 'Bad Request: the field that is wrong is in `errors`',
  401: 'Unauthorized: no valid client key',
  404: 'Not Found',
  409: 'Conflict',
  410: 'Gone: the results expired',
  422: 'Unprocessable Content',
  503: 'Service Unavailable',
}

/** Worked examples of `POST /jobs`, keyed `<upstream>_<resource>`. */
export function jobRequestExamples (upstreams: readonly AnyUpstream[]): Record<string, { summary: string, value: unknown }> {
  const examples: Record<string, { summary: string, value: unknown }> = {}
  for (const upstream of upstreams) {
    for (const resource of Object.keys(upstream.resources)) {
      examples[`${upstream.name}_${resource}`] = { summary: `${upstream.name} ${resource}`, value: jobRequestExample(upstream, resource) }
    }
  }
  return examples
}

export function completeResponses<T> (document: T, upstreams: readonly AnyUpstream[]): T {
  const doc = document as Document
  for (const [path, operations] of Object.entries(doc.paths ?? {})) {
    for (const [method, operation] of Object.entries(operations)) {
      const responses = operation.responses ??= {}
      for (const [status, response] of Object.entries(responses)) {
        if (Number(status) < 400) continue
        const json = response.content?.['application/json']
        if (json !== undefined) response.content = { 'application/problem+json': json }
        if (response.description === 'Default Response' && titles[status] !== undefined) response.description = titles[status]
      }
      const extra = [
        ...(exemptFromRateLimits(path) ? [] : ['429']),
        ...(operation.requestBody !== undefined || ['post', 'put', 'patch'].includes(method) ? ['408', '413', '415'] : []),
        ...(path.includes('{') ? ['414'] : []),
      ]
      for (const status of extra) {
        responses[status] ??= { ...added[status], content: { 'application/problem+json': problem } }
      }
      if (path === '/jobs' && method === 'post') {
        const media = operation.requestBody?.content?.['application/json']
        if (media !== undefined) media.examples = jobRequestExamples(upstreams)
      }
    }
  }
  return document
}
