/** The committed OpenAPI document is what the code generates, and the running gateway serves it at /openapi.json and /docs. */
import { readFile } from 'node:fs/promises'
import SwaggerParser from '@apidevtools/swagger-parser'
import t from 'tap'
import { registry } from '../../src/upstreams/registry.js'
import { renderOpenApi } from '../../src/openapi.js'
import { startGateway } from '../helpers/gateway.js'
import { checkDocument } from './openapi-checks.js'

t.test('openapi/openapi.json is in sync with the code (run `npm run openapi` after changing routes or schemas)', async t => {
  const committed = await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')
  const generated = await renderOpenApi()
  t.equal(generated, committed, 'openapi/openapi.json drifted from the code: run npm run openapi and commit it')
  await checkDocument(t, JSON.parse(generated), registry)
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
