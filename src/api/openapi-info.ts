/** The OpenAPI document's fixed parts; paths and schemas come from the routes, the upstreams' names from the registry. */
import type { AnyUpstream } from '../upstreams/registry.js'

/** `a`, `a and b`, `a, b and c`. */
const listed = (names: readonly string[]): string => names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`

export const openapiInfo = (registry: readonly AnyUpstream[]) => ({
  openapi: '3.1.0',
  info: {
    title: 'bulk-gateway',
    version: '0.1.0',
    description: `One normalized bulk-job API in front of ${listed(registry.map(u => u.title))}. ` +
      'Submit a job, poll it, then page or stream its results until they expire.',
  },
  tags: [
    { name: 'jobs', description: 'Submit bulk jobs, follow them, read their results' },
    { name: 'upstreams', description: 'What the gateway can talk to' },
    { name: 'webhooks', description: 'Called by upstreams, authenticated by their signatures' },
    { name: 'health', description: 'For orchestrators and load balancers' },
    { name: 'operations', description: 'For the people running the gateway: metrics' },
  ],
  components: {
    securitySchemes: {
      clientKey: { type: 'http' as const, scheme: 'bearer', description: 'A client key from GATEWAY_API_KEYS' },
    },
  },
  security: [{ clientKey: [] }],
})
