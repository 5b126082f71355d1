/** The OpenAPI document's fixed parts; paths and schemas come from the routes. */
export const openapiInfo = {
  openapi: '3.1.0',
  info: {
    title: 'bulk-gateway',
    version: '0.1.0',
    description: 'One normalized bulk-job API in front of DrChrono, Cliniko, Clinia, OCL and Metriport. ' +
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
}
