/**
 * A newcomer with no configuration: every upstream is served by its built-in simulator mounted in the gateway,
 * and the example body the OpenAPI document shows for each upstream (what Swagger UI's "Try it out" sends)
 * runs to completion.
 */
import t from 'tap'
import { renderOpenApi } from '../../src/openapi.js'
import { upstreams } from '../../src/upstreams/registry.js'
import { startGateway, waitForJob } from '../helpers/gateway.js'

t.test('sandbox mode: one example job of each upstream, straight from the OpenAPI document', async t => {
  const gw = await startGateway(t, { env: { SANDBOX: 'true', GATEWAY_API_KEYS: '' } })
  const listed = await (await gw.request('/upstreams', { key: null })).json()
  t.same(listed.data.map((u: { name: string, mode: string }) => [u.name, u.mode]), upstreams.map(u => [u.name, 'sandbox']))
  t.ok(gw.logs.some(l => l.includes('drchrono: SANDBOX mode') && l.includes('DRCHRONO_ACCESS_TOKEN')), 'one clear line says how to connect the real upstream')

  const doc = JSON.parse(await renderOpenApi())
  for (const upstream of upstreams) {
    const schemaName = Object.keys(doc.components.schemas).find(n => n.startsWith(`JobRequest_${upstream.name}_`) && !n.endsWith('Input') && doc.components.schemas[n].examples?.length)
    t.ok(schemaName, `${upstream.name} has a documented example`)
    const example = doc.components.schemas[schemaName!].examples[0]
    const res = await gw.request('/jobs', { key: null, method: 'POST', body: JSON.stringify(example) })
    t.equal(res.status, 202, `${upstream.name}: the example is accepted`)
    const job = await waitForJob(gw, (await res.json()).id, { key: undefined, timeoutMs: 60_000 })
    t.equal(job.status, 'completed', `${upstream.name} ${example.resource}: ${JSON.stringify(job.error)}`)
    const results = await (await gw.request(`/jobs/${job.id}/results?limit=5`, { key: null })).json()
    t.ok(results.total > 0 && results.data.length > 0, `${upstream.name}: results to read (${results.total})`)
  }
})
