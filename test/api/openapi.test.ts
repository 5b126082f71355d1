/** The committed OpenAPI document is what the code generates, and the running gateway serves it at /openapi.json and /docs. */
import { readFile } from 'node:fs/promises'
import SwaggerParser from '@apidevtools/swagger-parser'
import t from 'tap'
import { upstreams } from '../../src/upstreams/registry.js'
import { renderOpenApi } from '../../src/openapi.js'
import { startGateway } from '../helpers/gateway.js'

t.test('openapi/openapi.json is in sync with the code (run `npm run openapi` after changing routes or schemas)', async t => {
  const committed = await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')
  const generated = await renderOpenApi()
  t.equal(generated, committed, 'openapi/openapi.json drifted from the code: run npm run openapi and commit it')
  const doc = JSON.parse(generated)
  t.equal(doc.openapi, '3.1.0')
  for (const path of ['/jobs', '/jobs/{id}', '/jobs/{id}/results', '/upstreams', '/health/live', '/health/ready', '/webhooks/metriport']) {
    t.ok(doc.paths[path], `documents ${path}`)
  }
  t.notOk(Object.keys(doc.paths).some(p => p.startsWith('/sandbox')), 'simulators are not part of the API')
  t.same(Object.keys(doc.paths).filter(p => p.startsWith('/webhooks')), upstreams.filter(u => u.webhook !== undefined).map(u => `/webhooks/${u.name}`),
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
  const expected = upstreams.flatMap(u => Object.keys(u.resources).map(r => `${u.name}_${r}`))
  t.same(Object.keys(examples), expected, 'POST /jobs offers a worked example for every upstream and resource')
  t.ok(Object.entries(examples).every(([key, e]) => key === `${e.value.upstream}_${e.value.resource}`), 'each example is the job its name says')
})

t.test('the document is valid OpenAPI 3.1 according to a real validator', async t => {
  const doc = JSON.parse(await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'))
  await t.resolves(SwaggerParser.validate(structuredClone(doc)), 'swagger-parser accepts openapi/openapi.json')
  // The validator must be able to say no: the same document with a broken reference and no info is refused.
  const broken = structuredClone(doc)
  delete broken.info
  broken.paths['/jobs'].post.responses['202'].content['application/json'].schema = { $ref: '#/components/schemas/Nope' }
  await t.rejects(SwaggerParser.validate(broken), 'a broken document is refused')
})

t.test('the gateway serves the same document at /openapi.json and Swagger UI at /docs', async t => {
  // Configured as the document is rendered (src/openapi.ts): every upstream, so every webhook route.
  const gw = await startGateway(t, { startWorkers: false, env: { SANDBOX: 'true' } })
  const served = await (await fetch(`${gw.url}/openapi.json`)).text()
  t.same(JSON.parse(served), JSON.parse(await renderOpenApi()))
  const docs = await fetch(`${gw.url}/docs`, { redirect: 'follow' })
  t.equal(docs.status, 200)
  t.match(await docs.text(), /swagger-ui/i)
})
