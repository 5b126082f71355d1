/**
 * The gateway's `fhir` upstream against a real FHIR Bulk Data server nobody here wrote: the SMART Health IT
 * bulk-data-server (test/helpers/smart-peer.ts). Every job is compared with what the plain client
 * (test/helpers/fhir-plain-client.ts, checked in smart-peer-harness.test.ts) reads from the same server: the same
 * lines in the same order. Each peer serves 60 kick-offs and 60 status polls a minute per address, shared by every
 * loopback client, so each test keeps its requests few and the tests whose access log matters get a peer of their own.
 * The gateway is given the peer's base URL and nothing else: the files and status URLs the peer hands out are on
 * that origin, which the upstream URL guard allows without UPSTREAM_ALLOWED_ORIGINS.
 */
import t, { type Test } from 'tap'
import { backendServicesToken, discoverTokenUrl, plainExport } from '../helpers/fhir-plain-client.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'
import { requirePeer, startPeer, type SmartPeer } from '../helpers/smart-peer.js'
import { FHIR_JSON, deleteLine, expiredLine, firstDifference, groups, kickOffLine, splitSince, transientLine } from './peer-data.js'

// The first start of a machine installs the peer (minutes); the rest are hang detectors, not timings.
t.setTimeout(1_200_000)

if (requirePeer(t)) {
  /** A gateway whose fhir upstream is the peer at `base`. */
  const gatewayFor = (t: Test, peer: SmartPeer, base: string, env: Record<string, string> = {}) =>
    startGateway(t, { env: { FHIR_BASE_URL: base, ...env } })

  const submit = async (gw: TestGateway, resource: string, params: Record<string, unknown>) => {
    const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'fhir', resource, params }) })
    if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`)
    return res.json()
  }

  /** The job's records as the NDJSON stream gives them. */
  const ndjson = async (gw: TestGateway, id: string): Promise<string[]> => {
    const res = await gw.request(`/jobs/${id}/results`, { headers: { accept: 'application/x-ndjson' } })
    if (res.status !== 200) throw new Error(`results answered ${res.status}: ${await res.text()}`)
    const lines = (await res.text()).split('\n')
    lines.pop()
    return lines
  }

  /** Runs a job to its end and checks it completed with exactly `want`, line for line. */
  const expectSameRecords = async (t: Test, gw: TestGateway, resource: string, params: Record<string, unknown>, want: string[]) => {
    const job = await submit(gw, resource, params)
    const done = await waitForJob(gw, job.id, { timeoutMs: 180_000 })
    t.equal(done.status, 'completed', JSON.stringify(done.error))
    if (done.status !== 'completed') return done
    t.equal(done.progress.records, want.length, 'progress counts every record')
    const got = await ndjson(gw, job.id)
    t.equal(got.length, want.length, `${want.length} records`)
    t.equal(firstDifference(got, want), -1, 'the same lines as the plain client, in the same order')
    return done
  }

  t.test('the gateway reads what the plain client reads', async t => {
    const peer = await startPeer(t)
    const gw = await gatewayFor(t, peer, peer.baseUrl)

    t.test('(a) a system export of Patient,Observation', async t => {
      const params = { _type: 'Patient,Observation' }
      const want = await plainExport({ base: peer.baseUrl, kind: 'system', params })
      t.ok(want.lines.length > 0)
      await expectSameRecords(t, gw, 'system', params, want.lines)
    })

    t.test('(b) a patient export with _type', async t => {
      const params = { _type: 'Patient,Immunization' }
      const want = await plainExport({ base: peer.baseUrl, kind: 'patient', params })
      t.ok(want.lines.length > 0)
      await expectSameRecords(t, gw, 'patient', params, want.lines)
    })

    t.test('(c) a group export (the largest group, every type: several files)', async t => {
      const group = [...await groups(peer)].sort((a, b) => b.quantity - a.quantity || a.id.localeCompare(b.id))[0]!
      const want = await plainExport({ base: peer.baseUrl, kind: 'group', groupId: group.id })
      t.ok(want.manifest.output.length > 1, `${want.manifest.output.length} files`)
      await expectSameRecords(t, gw, 'group', { groupId: group.id }, want.lines)
    })

    t.test('(d) _since at a time that splits the observations', async t => {
      const every = await plainExport({ base: peer.baseUrl, kind: 'system', params: { _type: 'Observation' } })
      const { since, after } = splitSince(every.lines)
      const params = { _type: 'Observation', _since: since }
      const want = await plainExport({ base: peer.baseUrl, kind: 'system', params })
      t.equal(want.lines.length, after.length, `${since}: ${after.length} of ${every.lines.length}`)
      t.ok(want.lines.length > 0 && want.lines.length < every.lines.length, 'a real split')
      await expectSameRecords(t, gw, 'system', params, want.lines)
    })
  })

  t.test('(e) a cancelled job DELETEs its status URL, which then answers 404', async t => {
    const peer = await startPeer(t)
    // m = 3000 with one type: the export takes the peer tens of seconds, far longer than the cancel.
    const gw = await gatewayFor(t, peer, peer.simBase({ m: 3000 }))
    const job = await submit(gw, 'system', { _type: 'Patient' })
    await peer.waitForLog(kickOffLine)

    const cancel = await gw.request(`/jobs/${job.id}`, { method: 'DELETE' })
    t.equal(cancel.status, 202)
    t.equal((await cancel.json()).status, 'cancelled', 'cancelled while the peer was still building the export')
    const [deleted] = await peer.waitForLog(deleteLine)
    const path = deleteLine.exec(deleted!)![1]!
    t.pass(`the peer saw DELETE ${path}`)
    const after = await fetch(peer.origin + path, { headers: { accept: FHIR_JSON } })
    t.equal(after.status, 404, 'the status URL is gone')
    await after.body?.cancel()
    t.equal((await waitForJob(gw, job.id)).status, 'cancelled')
  })

  t.test('(f) a transient error on the status poll: the job completes with every record', async t => {
    const peer = await startPeer(t)
    const params = { _type: 'Patient,Immunization' }
    const want = await plainExport({ base: peer.baseUrl, kind: 'system', params })
    const gw = await gatewayFor(t, peer, peer.simBase({ err: 'transient_error' }))
    await expectSameRecords(t, gw, 'system', params, want.lines)
    t.ok(peer.accessLog.some(line => transientLine.test(line)), 'the peer did answer a status poll with 500')
  })

  t.test('(g) files that always expire: the export is run again, then the job fails with a stable code', async t => {
    const peer = await startPeer(t)
    const gw = await gatewayFor(t, peer, peer.simBase({ err: 'file_expired' }))
    const job = await submit(gw, 'system', { _type: 'Patient' })
    const done = await waitForJob(gw, job.id, { timeoutMs: 300_000 })
    t.equal(done.status, 'failed')
    // docs/API.md (fhir): files that keep expiring fail the job with upstream_failed once the restarts are spent,
    // with the status that said so.
    t.match(done.error, { code: 'upstream_failed', upstreamStatus: 410, message: /files expired \(410\)/ })
    const kickOffs = peer.accessLog.filter(line => kickOffLine.test(line))
    const expired = peer.accessLog.filter(line => expiredLine.test(line))
    t.ok(kickOffs.length >= 2, `the export was started again (${kickOffs.length} kick-offs)`)
    t.ok(expired.length >= kickOffs.length, `every run met an expired file (${expired.length} downloads answered 410)`)
  })

  t.test('(h) secure mode: a registered key completes; no credentials fail upstream_unauthorized', async t => {
    const peer = await startPeer(t)
    const base = peer.simBase({ secure: 1 })
    const clientId = await peer.register(await peer.publicKeySet('RS384'))
    const privateJwk = await peer.privateKey('RS384')
    const token = await backendServicesToken({ tokenUrl: await discoverTokenUrl(base), clientId, privateJwk })
    const params = { _type: 'Patient,Condition' }
    const want = await plainExport({ base, kind: 'system', params, token })

    const gw = await gatewayFor(t, peer, base, { FHIR_CLIENT_ID: clientId, FHIR_PRIVATE_KEY: JSON.stringify(privateJwk) })
    await expectSameRecords(t, gw, 'system', params, want.lines)
    const logs = gw.logs.join('\n')
    t.notOk(logs.includes(privateJwk.d.slice(0, 24)), 'no part of the private key in the logs')
    // The client id, the assertion and the access token are all JWTs here (eyJ… . eyJ…).
    t.notMatch(logs, /eyJ[\w-]{8,}\.eyJ[\w-]{8,}/, 'no JWT in the logs: no client id, assertion or access token')

    const anonymous = await gatewayFor(t, peer, base)
    const failed = await waitForJob(anonymous, (await submit(anonymous, 'system', params)).id, { timeoutMs: 180_000 })
    t.equal(failed.status, 'failed')
    t.match(failed.error, { code: 'upstream_unauthorized', upstreamStatus: 401 })
  })

  t.test('(i) deleted and error entries are kept after the output, wrapped with their manifest array and type', async t => {
    const peer = await startPeer(t)
    const wrap = (array: string, type: string) => (line: string) => `{"manifestArray":"${array}","type":"${type}","resource":${line}}`

    const every = await plainExport({ base: peer.baseUrl, kind: 'system', params: { _type: 'Observation' } })
    const { since } = splitSince(every.lines)
    const deletions = { _type: 'Observation', _since: since }
    const withDeleted = await plainExport({ base: peer.simBase({ del: 30 }), kind: 'system', params: deletions })
    t.ok(withDeleted.deleted.length > 0 && withDeleted.lines.length > 0, `${withDeleted.deleted.length} deleted entries beside ${withDeleted.lines.length} resources`)
    t.same([...new Set(withDeleted.manifest.deleted?.map(f => f.type))], ['Bundle'], 'deleted files are Bundles')
    const gwDeleted = await gatewayFor(t, peer, peer.simBase({ del: 30 }))
    const done = await expectSameRecords(t, gwDeleted, 'system', deletions, [...withDeleted.lines, ...withDeleted.deleted.map(wrap('deleted', 'Bundle'))])
    t.match(done.upstreamInfo, { records: { output: withDeleted.lines.length, deleted: withDeleted.deleted.length, error: 0 } }, 'the job counts them')

    const types = { _type: 'Condition,Immunization,Patient' }
    const withErrors = await plainExport({ base: peer.simBase({ err: 'some_file_generation_failed' }), kind: 'system', params: types })
    t.ok(withErrors.error.length > 0, `${withErrors.error.length} error entries beside ${withErrors.lines.length} resources`)
    t.same([...new Set(withErrors.manifest.error.map(f => f.type))], ['OperationOutcome'], 'error files are OperationOutcomes')
    const gwErrors = await gatewayFor(t, peer, peer.simBase({ err: 'some_file_generation_failed' }))
    await expectSameRecords(t, gwErrors, 'system', types, [...withErrors.lines, ...withErrors.error.map(wrap('error', 'OperationOutcome'))])
  })
}
