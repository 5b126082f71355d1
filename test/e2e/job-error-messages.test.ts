/**
 * Issue 10, point 1 (last sentence) and point 4: a failed job's error shown to clients (GET /jobs/:id) carries a
 * stable code and the upstream's status, never the upstream's body and never an internal URL or address.
 * Every upstream is pointed at a loopback server that refuses each request with an error body full of a marker
 * (as an upstream echoing a patient's name would), and one is pointed at a closed loopback port.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { registry } from '../../src/upstreams/registry.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const MARKER = 'phi-marker-7f3a'
/** Every field any upstream's error body is known to carry, and some it is not. */
const BODY = JSON.stringify({
  detail: `Patient ${MARKER} not found`,
  message: MARKER,
  title: MARKER,
  type: MARKER,
  status: MARKER,
  error: { type: MARKER, message: MARKER },
  errors: { [MARKER]: [`${MARKER} is invalid`] },
})

/** A loopback server answering every request with `status` and the marker body. */
async function markerUpstream (t: Test, status: number): Promise<string> {
  const server = createServer((_req, res) => { res.writeHead(status, { 'content-type': 'application/json' }).end(BODY) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A job of the upstream's first resource with its documented example body. */
async function submit (gw: TestGateway, name: string): Promise<string> {
  const definition = registry.upstreams.find(u => u.name === name)
  const [resource, spec] = Object.entries(definition?.resources ?? {})[0] ?? []
  const body: Record<string, unknown> = { upstream: name, resource, params: spec?.example ?? {} }
  if (spec?.payload !== undefined) body[spec.payload.field] = spec.payload.example
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify(body) })
  if (res.status !== 202) throw new Error(`POST /jobs for ${name} answered ${res.status}: ${await res.text()}`)
  return (await res.json()).id
}

/** What no client-visible message may hold: the marker, a loopback host, a port of ours. */
function holdsNothingInternal (t: Test, what: string, message: string, ports: string[]) {
  t.notMatch(message, MARKER, `${what}: no upstream body in the message`)
  t.notMatch(message, /127\.0\.0\.1|localhost|http:\/\//, `${what}: no internal URL or host in the message`)
  for (const port of ports) t.notMatch(message, new RegExp(`\\b${port}\\b`), `${what}: no port of ours in the message`)
}

t.test('upstream error bodies never reach the job\'s message; the code and status do', async t => {
  const expected: Record<string, { status: number, code: string }> = {
    drchrono: { status: 400, code: 'upstream_rejected' },
    cliniko: { status: 422, code: 'upstream_rejected' },
    ocl: { status: 404, code: 'upstream_not_found' },
    metriport: { status: 404, code: 'upstream_not_found' },
    clinia: { status: 400, code: 'upstream_rejected' },
  }
  const urls: Record<string, string> = {}
  for (const [name, { status }] of Object.entries(expected)) urls[name] = await markerUpstream(t, status)
  const ports = Object.values(urls).map(u => new URL(u).port)
  const gw = await startGateway(t, {
    env: {
      DRCHRONO_BASE_URL: urls.drchrono as string,
      DRCHRONO_ACCESS_TOKEN: 'drchrono-access-token',
      CLINIKO_BASE_URL: `${urls.cliniko as string}/v1`,
      CLINIKO_API_KEY: 'cliniko-key-uk1',
      CLINIKO_USER_AGENT: 'Gateway tests (tests@example.com)',
      OCL_BASE_URL: urls.ocl as string,
      METRIPORT_BASE_URL: urls.metriport as string,
      METRIPORT_API_KEY: 'metriport-key',
      METRIPORT_WEBHOOK_KEY: 'metriport-webhook-key',
      CLINIA_BASE_URL: urls.clinia as string,
      CLINIA_API_KEY: 'clinia-key',
      CLINIA_SOURCE_KEY: 'src',
    },
  })
  for (const [name, { status, code }] of Object.entries(expected)) {
    const job = await waitForJob(gw, await submit(gw, name))
    t.equal(job.status, 'failed', name)
    t.match(job.error, { code, upstreamStatus: status }, `${name}: the stable code and the upstream's status`)
    holdsNothingInternal(t, name, String(job.error?.message), ports)
  }
  t.notMatch(gw.logs.join('\n'), MARKER, 'nor do the logs hold the bodies')
})

t.test('a connection refused on an internal address: a fixed message by error code, no address', async t => {
  const closed = createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const port = String((closed.address() as AddressInfo).port)
  await new Promise(resolve => closed.close(resolve))
  const gw = await startGateway(t, { env: { OCL_BASE_URL: `http://127.0.0.1:${port}` } })
  const job = await waitForJob(gw, await submit(gw, 'ocl'))
  t.match(job.error, { code: 'upstream_unavailable', upstreamStatus: null })
  t.match(job.error.message, /ECONNREFUSED/, 'the error code is kept: it tells the operator what happened')
  holdsNothingInternal(t, 'connection refused', String(job.error.message), [port])
})
