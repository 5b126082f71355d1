/**
 * A newcomer with no configuration: every upstream is served by its built-in simulator, and the example body the
 * OpenAPI document shows for each upstream (what Swagger UI's "Try it out" sends) runs to completion. The
 * simulators are on a listener of their own, bound to 127.0.0.1, with secrets drawn per process: the gateway's
 * public port has no /sandbox/*, and the published test credentials open nothing.
 */
import { connect } from 'node:net'
import { networkInterfaces } from 'node:os'
import t from 'tap'
import { renderOpenApi } from '../../src/openapi.js'
import { registry } from '../../src/upstreams/registry.js'
import { SANDBOX_CREDENTIALS as DRCHRONO } from '../../src/upstreams/drchrono/simulator/index.js'
import { SANDBOX_CREDENTIALS as METRIPORT } from '../../src/upstreams/metriport/env.js'
import { signWebhook } from '../../src/upstreams/metriport/signature.js'
import { startGateway, waitForJob } from '../helpers/gateway.js'

/** Whether a TCP connection to host:port is accepted. */
function accepts (host: string, port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = connect({ host, port })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

t.test('sandbox mode: one example job of each upstream, straight from the OpenAPI document', async t => {
  const gw = await startGateway(t, { env: { SANDBOX: 'true', GATEWAY_API_KEYS: '' } })
  const listed = await (await gw.request('/upstreams', { key: null })).json()
  t.same(listed.data.map((u: { name: string, mode: string }) => [u.name, u.mode]), registry.upstreams.map(u => [u.name, 'sandbox']))
  t.ok(gw.logs.some(l => l.includes('drchrono: SANDBOX mode') && l.includes('DRCHRONO_ACCESS_TOKEN')), 'one clear line says how to connect the real upstream')

  const doc = JSON.parse(await renderOpenApi())
  for (const upstream of registry.upstreams) {
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

t.test('the simulators are not on the public port but on 127.0.0.1 alone, with secrets of this process', async t => {
  const gw = await startGateway(t, { env: { SANDBOX: 'true' }, startWorkers: false })
  for (const upstream of registry.upstreams) {
    for (const path of ['/', '/v1/patients', '/api/appointments_list', '/medical/v1/document/download-url/bulk']) {
      const res = await fetch(`${gw.url}/sandbox/${upstream.name}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
      t.equal(res.status, 404, `public port: POST /sandbox/${upstream.name}${path} is 404`)
      t.match(res.headers.get('content-type'), /^application\/problem\+json/, 'as a problem')
    }
  }

  const sandboxUrl = gw.app.upstreams.sandboxUrl
  t.match(sandboxUrl, /^http:\/\/127\.0\.0\.1:\d+$/, 'the simulators\' listener is on 127.0.0.1, on a port of its own')
  const port = Number(new URL(sandboxUrl!).port)
  t.not(port, Number(new URL(gw.url).port), 'not the gateway\'s port')
  t.ok(await accepts('127.0.0.1', port), 'it answers on loopback')
  const external = Object.values(networkInterfaces()).flat().find(i => i !== undefined && !i.internal && i.family === 'IPv4')
  if (external === undefined) t.comment('no non-loopback IPv4 interface on this machine: the refusal there is not checked')
  else t.notOk(await accepts(external.address, port), `and not on ${external.address}`)

  const drchrono = gw.app.upstreams.settingsFor('drchrono') as { baseUrl: string, accessToken: string }
  t.equal(drchrono.baseUrl, `${sandboxUrl}/drchrono`, 'the adapter is pointed at its simulator there')
  const list = (token: string) => fetch(`${drchrono.baseUrl}/api/appointments_list`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
  t.equal((await list(DRCHRONO.accessToken)).status, 401, 'the published DrChrono token is refused')
  t.equal((await list(drchrono.accessToken)).status, 201, 'the drawn one is accepted')

  // A delivery signed with the published webhook key: the gateway checks the key drawn for this process.
  const ping = JSON.stringify({ ping: 'x', meta: { messageId: 'm-1', when: new Date().toISOString(), type: 'ping' } })
  const forged = await fetch(`${gw.url}/webhooks/metriport`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-metriport-signature': signWebhook(ping, METRIPORT.webhookKey) }, body: ping,
  })
  t.ok(forged.status >= 400 && forged.status < 500, `a webhook signed with the published key is refused (${forged.status})`)

  const other = await startGateway(t, { env: { SANDBOX: 'true' }, startWorkers: false })
  t.not(other.app.upstreams.sandboxUrl, sandboxUrl, 'another build, another listener')
  // What the adapter's settings hold that the other build's do not: the secrets drawn for this process, as given
  // (a key) or as made from them (a SMART client's key pair), wherever the settings keep them.
  const strings = (value: unknown): string[] => typeof value === 'string'
    ? [value]
    : value !== null && typeof value === 'object' ? Object.values(value).flatMap(strings) : []
  for (const upstream of registry.upstreams) {
    const mine = strings(gw.app.upstreams.settingsFor(upstream.name)).filter(s => !s.startsWith('http'))
    const theirs = strings(other.app.upstreams.settingsFor(upstream.name))
    const drawn = mine.filter(s => !theirs.includes(s))
    t.ok(upstream.simulator.credentials.length > 0, `${upstream.name}: its simulator asks for secrets`)
    t.ok(drawn.length >= upstream.simulator.credentials.length, `${upstream.name}: two builds draw different secrets`)
    t.ok(drawn.every(s => s.length >= 32), `${upstream.name}: each secret is long`)
  }
})
