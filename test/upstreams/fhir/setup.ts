/** What the FHIR adapter tests share: a simulator, a client with tiny backoffs, and an adapter with tiny waits. */
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { UpstreamClient, type UpstreamClientOptions } from '../../../src/upstreams/http.js'
import { fhirAdapter, type FhirSettings } from '../../../src/upstreams/fhir/adapter.js'
import { startFhirSimulator, type FhirSimulatorOptions } from '../../../src/upstreams/fhir/simulator/index.js'

/** Small data: 12 patients, files of 10 resources, one "in progress" poll. */
export const SIM: FhirSimulatorOptions = { seed: 3, pollsBeforeReady: 1, pageSize: 10, throttleBlockMs: 30 }

export async function setup (t: Test, sim: FhirSimulatorOptions = {}, settings: Partial<FhirSettings> = {}, clientOptions: UpstreamClientOptions = {}) {
  const simulator = await startFhirSimulator({ ...SIM, ...sim })
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10, ...clientOptions })
  t.teardown(async () => {
    await client.close()
    await simulator.close()
  })
  const base: FhirSettings = { baseUrl: simulator.url, auth: null, minWaitMs: 2, maxWaitMs: 20, maxRestarts: 3, exportTimeoutMs: 60_000 }
  const adapter = fhirAdapter({ ...base, ...settings }, client)
  return { simulator, state: simulator.state, adapter, client, settings: { ...base, ...settings } }
}

/** Exact text equality of two record lists, without a slow deep diff. */
export function sameRecords (t: Test, got: readonly string[], want: readonly string[], message: string): void {
  t.equal(got.length, want.length, `${message}: ${want.length} records`)
  t.equal(got.findIndex((r, i) => r !== want[i]), -1, `${message}: same text, same order`)
}

/**
 * A plain HTTP proxy on another loopback port (so another origin) in front of `target`: it forwards every request
 * as it came and notes each one's path and Authorization header. `target` may be set later (a simulator that needs
 * the proxy's URL in its settings).
 */
export async function startProxy (t: Test, target = '') {
  const seen: Array<{ path: string, authorization: string | undefined }> = []
  const server = createServer((req, res) => {
    seen.push({ path: req.url ?? '', authorization: req.headers.authorization })
    const to = new URL(req.url ?? '/', proxy.target)
    const out = httpRequest(to, { method: req.method, headers: { ...req.headers, host: to.host } }, answer => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    out.on('error', () => res.destroy())
    req.pipe(out)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address() as AddressInfo
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  const proxy = { url: `http://127.0.0.1:${address.port}`, seen, target }
  return proxy
}
