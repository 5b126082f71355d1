/**
 * Issue 10, acceptance 3, through the real gateway: OCL redirects the export download to a loopback server
 * that is not allowed. The job fails with `upstream_url_refused`, that server sees no request and no TCP
 * connection, and the job's error (GET /jobs/:id) names no internal address. Listing the origin in
 * UPSTREAM_ALLOWED_ORIGINS lets the gateway follow it.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { SANDBOX_OCL_TOKEN, startOclSimulator } from '../../src/upstreams/ocl/simulator/index.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

/** A plain loopback server standing for an internal service (a metadata endpoint, an admin API). */
async function internalServer (t: Test, status = 200) {
  const seen = { connections: 0, requests: 0 }
  const server = createServer((_req, res) => {
    seen.requests++
    res.writeHead(status, { 'content-type': 'application/zip' }).end('internal secret, not a zip')
  })
  server.on('connection', () => { seen.connections++ })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) }))
  return { seen, port: (server.address() as AddressInfo).port }
}

async function exportJob (t: Test, link: string, env: Record<string, string> = {}) {
  const sim = await startOclSimulator({ exportPolls: 0, exportLinkOverride: link })
  t.teardown(() => sim.close())
  const gw = await startGateway(t, { env: { OCL_BASE_URL: sim.url, OCL_TOKEN: SANDBOX_OCL_TOKEN, OCL_EXPORT_POLL_SECONDS: '0.02', ...env } })
  const res = await gw.request('/jobs', {
    method: 'POST', body: JSON.stringify({ upstream: 'ocl', resource: 'export', params: { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL' } }),
  })
  t.equal(res.status, 202)
  const { id } = await res.json()
  return { sim, gw, job: await waitForJob(gw, id) }
}

/** The job as a client reads it, and the gateway's logs, hold no trace of the internal address. */
function namesNoInternalAddress (t: Test, gw: TestGateway, job: { error: { message: string } }, port: number) {
  t.notMatch(job.error.message, /127\.0\.0\.1|localhost|\[?::1\]?|::ffff/, 'the message names no internal host')
  t.notMatch(job.error.message, new RegExp(`\\b${port}\\b`), 'nor its port')
  t.notMatch(JSON.stringify(job), new RegExp(`127\\.0\\.0\\.1:${port}|localhost:${port}`), 'nor does any field of the job view')
  t.notMatch(gw.logs.join('\n'), /internal secret|X-Amz-Signature/, 'the logs hold neither the internal answer nor the link')
}

t.test('an export redirected to a loopback server that is not allowed: upstream_url_refused, no request reaches it', async t => {
  const internal = await internalServer(t)
  for (const host of ['127.0.0.1', 'localhost']) {
    const { sim, gw, job } = await exportJob(t, `http://${host}:${internal.port}/latest/meta-data/export.zip?X-Amz-Signature=abc`)
    t.equal(job.status, 'failed', host)
    t.same(job.error, {
      code: 'upstream_url_refused',
      message: 'the upstream sent the gateway to an address it does not allow (see UPSTREAM_ALLOWED_ORIGINS)',
      upstreamStatus: null,
    }, `${host}: the stable code, and a message naming no address`)
    t.equal(sim.state.stats.exportGets >= 1, true, 'OCL was asked for the export and answered with its redirect')
    namesNoInternalAddress(t, gw, job, internal.port)
  }
  t.same(internal.seen, { connections: 0, requests: 0 }, 'the loopback server saw no TCP connection and no request')
})

t.test('an origin listed in UPSTREAM_ALLOWED_ORIGINS is followed (and its failure still names no address); no other is', async t => {
  const internal = await internalServer(t, 410)
  const { job, gw, sim } = await exportJob(t, `http://127.0.0.1:${internal.port}/export.zip`, { UPSTREAM_ALLOWED_ORIGINS: `http://127.0.0.1:${internal.port}` })
  t.equal(job.status, 'failed')
  t.match(job.error, { code: 'upstream_failed', upstreamStatus: 410 }, 'the listed server was reached and refused the download')
  const reached = internal.seen.requests
  t.ok(reached >= 1, 'the listed origin received the download requests')
  namesNoInternalAddress(t, gw, job, internal.port)

  // The same server under a name that is not listed: the listing is by origin, and the name resolves to loopback.
  sim.state.exportLinkOverride = `http://localhost:${internal.port}/export.zip`
  const res = await gw.request('/jobs', {
    method: 'POST', body: JSON.stringify({ upstream: 'ocl', resource: 'export', params: { ownerType: 'users', owner: 'jdoe', source: 'ClinicTerms' } }),
  })
  const other = await waitForJob(gw, (await res.json()).id)
  t.match(other.error, { code: 'upstream_url_refused' })
  t.equal(internal.seen.requests, reached, 'the unlisted origin was not contacted')
})
