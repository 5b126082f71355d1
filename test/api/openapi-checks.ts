/**
 * What every OpenAPI document of the gateway must say, whatever upstreams it serves (run by openapi.test.ts over
 * the built-in registry, and by test/upstreams/extra-upstream.test.ts over a test's own).
 */
import SwaggerParser from '@apidevtools/swagger-parser'
import type { Test } from 'tap'
import type { Registry } from '../../src/upstreams/registry.js'

/** Checks a rendered document of a gateway serving every upstream of `registry`. */
export async function checkDocument (t: Test, doc: any, registry: Registry): Promise<void> {
  t.equal(doc.openapi, '3.1.0')
  for (const path of ['/jobs', '/jobs/{id}', '/jobs/{id}/results', '/upstreams', '/health/live', '/health/ready']) {
    t.ok(doc.paths[path], `documents ${path}`)
  }
  for (const upstream of registry.upstreams) t.match(doc.info.description, upstream.title, `the API's description names ${upstream.title}`)
  t.notOk(Object.keys(doc.paths).some(p => p.startsWith('/sandbox')), 'simulators are not part of the API')
  t.same(Object.keys(doc.paths).filter(p => p.startsWith('/webhooks')), registry.upstreams.filter(u => u.webhook !== undefined).map(u => `/webhooks/${u.name}`),
    'one static webhook path per upstream that receives webhooks')
  type Op = {
    tags?: string[],
    summary?: string,
    requestBody?: unknown,
    responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>,
  }
  for (const [path, item] of Object.entries<Record<string, Op>>(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const name = `${method.toUpperCase()} ${path}`
      t.ok(op.tags?.length && op.summary, `${name} has tags and a summary`)
      const errors = Object.keys(op.responses).filter(code => code.startsWith('4') || code.startsWith('5'))
      t.ok(errors.every(code => {
        const content = op.responses[code]?.content ?? {}
        return Object.keys(content).join() === 'application/problem+json' && content['application/problem+json']?.schema?.$ref === '#/components/schemas/Problem'
      }), `${name}: error responses are application/problem+json Problems`)
      // Webhook routes have no request limit but one on refused deliveries (webhook-guard.ts).
      t.equal(op.responses['429'] !== undefined, !/^\/health\//.test(path), `${name}: 429 documented exactly where rate limits apply`)
      if (method === 'post') t.ok(op.responses['413'] && op.responses['408'], `${name}: 413 and 408 documented for its body`)
    }
  }
  const examples = doc.paths['/jobs'].post.requestBody.content['application/json'].examples as Record<string, { value: { upstream: string, resource: string } }>
  const expected = registry.upstreams.flatMap(u => Object.keys(u.resources).map(r => `${u.name}_${r}`))
  t.same(Object.keys(examples), expected, 'POST /jobs offers a worked example for every upstream and resource')
  t.ok(Object.entries(examples).every(([key, e]) => key === `${e.value.upstream}_${e.value.resource}`), 'each example is the job its name says')
  await t.resolves(SwaggerParser.validate(structuredClone(doc)), 'swagger-parser accepts the document')
}
