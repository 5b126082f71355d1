/**
 * The gateway's `fhir` upstream against a real FHIR Bulk Data server nobody here wrote: the SMART Health IT
 * bulk-data-server in ../shared/peers (test/helpers/smart-peer.ts). The oracle is a plain client of its own
 * (test/helpers/fhir-plain-client.ts), checked first against the server's own counts and data; then every gateway
 * job is compared with what the plain client reads from the same server: the same lines in the same order.
 *
 * The gateway tests skip until the `fhir` upstream is registered (src/upstreams/registry.ts). Each peer serves
 * 60 kick-offs and 60 status polls a minute per address, shared by every loopback client, so each test keeps its
 * requests few and the tests whose access log matters get a peer of their own.
 */
import t, { type Test } from 'tap'
import { registry } from '../../src/upstreams/registry.js'
import { backendServicesToken, discoverTokenUrl, kickOff, plainExport } from '../helpers/fhir-plain-client.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'
import { requirePeer, startPeer, type SmartPeer } from '../helpers/smart-peer.js'

// The first start of a machine installs the peer (minutes); the rest are hang detectors, not timings.
t.setTimeout(1_200_000)

const FHIR_JSON = 'application/fhir+json'

// Access-log lines (Apache combined) the tests look for; the harness checks each against what the peer writes.
/** An accepted system kick-off (GET or POST, any base). */
const kickOffLine = /"(?:GET|POST) \/\S*fhir\/\$export\S* HTTP\/1\.1" 202 /
/** A status poll answered 500 (the transient_error simulation). */
const transientLine = /"GET \/fhir\/bulkstatus\/\w+ HTTP\/1\.1" 500 /
/** A download answered 410 (the file_expired simulation). */
const expiredLine = /"GET \/\S+\/fhir\/bulkfiles\/\S+ HTTP\/1\.1" 410 /
/** An accepted cancel of an export: DELETE of its status URL (group 1: the path). */
const deleteLine = /"DELETE (\/fhir\/bulkstatus\/\w+) HTTP\/1\.1" 202 /

/** `$get-resource-counts`: rows per resource type. */
async function resourceCounts (peer: SmartPeer): Promise<Record<string, number>> {
  const res = await fetch(`${peer.baseUrl}/$get-resource-counts`, { headers: { accept: FHIR_JSON } })
  const body = await res.json() as { parameter: Array<{ name: string, valueInteger: number }> }
  return Object.fromEntries(body.parameter.map(p => [p.name, p.valueInteger]))
}

/** The peer's groups (`GET [base]/Group`), with how many patients each holds. */
async function groups (peer: SmartPeer): Promise<Array<{ id: string, quantity: number }>> {
  const res = await fetch(`${peer.baseUrl}/Group`, { headers: { accept: FHIR_JSON } })
  const bundle = await res.json() as { entry?: Array<{ resource: { id: string, quantity: number } }> }
  return (bundle.entry ?? []).map(e => ({ id: e.resource.id, quantity: e.resource.quantity }))
}

/** `resourceType/id` of each line. */
const keys = (lines: string[]) => lines.map(line => {
  const r = JSON.parse(line) as { resourceType: string, id: string }
  return `${r.resourceType}/${r.id}`
})

const countByType = (lines: string[]) => {
  const counts: Record<string, number> = {}
  for (const line of lines) {
    const type = (JSON.parse(line) as { resourceType: string }).resourceType
    counts[type] = (counts[type] ?? 0) + 1
  }
  return counts
}

/**
 * A `_since` that splits the given Observations, read from their data: the server compares `issued` (as UTC,
 * to the second) with `_since`, so the instant one second after the middle distinct value, when the next value is
 * further on, has no observation on its boundary. Returns it and the keys of the Observations from it on.
 */
function splitSince (lines: string[]): { since: string, after: string[] } {
  const seconds = (issued: string) => Math.floor(Date.parse(issued) / 1000) * 1000
  const observations = lines.map(line => JSON.parse(line) as { id: string, issued?: string })
  const distinct = [...new Set(observations.flatMap(o => o.issued === undefined ? [] : [seconds(o.issued)]))].sort((a, b) => a - b)
  const middle = Math.floor(distinct.length / 2)
  // the gap nearest the middle that leaves at least one whole second between two values
  const order = distinct.map((_, i) => i).sort((a, b) => Math.abs(a - middle) - Math.abs(b - middle))
  const at = order.find(i => i + 1 < distinct.length && distinct[i + 1]! - distinct[i]! >= 2000)
  if (at === undefined) throw new Error('no gap of two seconds between Observation.issued values')
  const pivot = distinct[at]! + 1000
  const after = observations.filter(o => o.issued !== undefined && seconds(o.issued) >= pivot).map(o => `Observation/${o.id}`)
  return { since: new Date(pivot).toISOString().replace('.000Z', 'Z'), after }
}

/** The index of the first line that differs, or -1 when both lists are equal. */
function firstDifference (got: string[], want: string[]): number {
  const i = got.findIndex((line, index) => line !== want[index])
  if (i !== -1) return i
  return got.length === want.length ? -1 : Math.min(got.length, want.length)
}

if (requirePeer(t)) {
  t.test('the harness and the plain client against the peer directly', async t => {
    const peer = await startPeer(t)
    const counts = await resourceCounts(peer)
    t.comment(`peer counts: ${JSON.stringify(counts)}`)

    t.test('a system export of Patient,Observation holds what $get-resource-counts says', async t => {
      const got = await plainExport({ base: peer.baseUrl, kind: 'system', params: { _type: 'Patient,Observation' } })
      t.ok((counts.Patient ?? 0) > 0 && (counts.Observation ?? 0) > 0, 'the peer has patients and observations')
      t.same(countByType(got.lines), { Patient: counts.Patient, Observation: counts.Observation })
      t.equal(new Set(keys(got.lines)).size, got.lines.length, 'no resource twice')
      t.same([...new Set(got.manifest.output.map(o => o.type))].sort(), ['Observation', 'Patient'], 'only the types asked for')
      t.equal(got.manifest.output.reduce((n, o) => n + (o.count ?? 0), 0), got.lines.length, 'the manifest counts every line downloaded')
      t.equal(got.manifest.requiresAccessToken, false)
      t.match(got.statusUrl, new RegExp(`^${peer.origin}/fhir/bulkstatus/\\w+$`))
      t.same(got.error, [])
    })

    t.test('a group export holds the group\'s patients and only their observations', async t => {
      const all = await groups(peer)
      t.equal(all.length, 8, 'the peer\'s eight groups')
      t.equal(all.reduce((n, g) => n + g.quantity, 0), counts.Patient, 'every patient is in exactly one group')
      const group = [...all].sort((a, b) => b.quantity - a.quantity || a.id.localeCompare(b.id))[0]!
      const got = await plainExport({ base: peer.baseUrl, kind: 'group', groupId: group.id, params: { _type: 'Patient,Observation' } })
      const byType = countByType(got.lines)
      t.equal(byType.Patient, group.quantity, `${group.id}: its ${group.quantity} patients`)
      const patients = new Set(got.lines.map(l => JSON.parse(l)).filter(r => r.resourceType === 'Patient').map(r => `Patient/${r.id}`))
      const observations = got.lines.map(l => JSON.parse(l)).filter(r => r.resourceType === 'Observation')
      t.ok(observations.length > 0 && observations.length < (counts.Observation ?? 0), `some observations, not all (${observations.length})`)
      t.equal(observations.filter(o => !patients.has(o.subject?.reference)).length, 0, 'every observation is about one of the group\'s patients')
      t.comment(`group ${group.id}: ${group.quantity} patients, ${observations.length} observations`)
    })

    t.test('_since splits the observations where their own dates say', async t => {
      const every = await plainExport({ base: peer.baseUrl, kind: 'system', params: { _type: 'Observation' } })
      t.equal(every.lines.length, counts.Observation)
      const { since, after } = splitSince(every.lines)
      t.ok(after.length > 0 && after.length < every.lines.length, `${since} splits them: ${after.length} of ${every.lines.length}`)
      const got = await plainExport({ base: peer.baseUrl, kind: 'system', params: { _type: 'Observation', _since: since } })
      t.same(keys(got.lines).sort(), [...after].sort(), 'exactly the observations issued from _since on')
      t.same(got.deleted, [])
    })

    t.test('secure mode: a registered RS384 key gets a token and the export; no token, 401', async t => {
      const base = peer.simBase({ secure: 1 })
      const clientId = await peer.register(await peer.publicKeySet('RS384'))
      const tokenUrl = await discoverTokenUrl(base)
      t.equal(tokenUrl, `${peer.origin}/auth/token`)
      const token = await backendServicesToken({ tokenUrl, clientId, privateJwk: await peer.privateKey('RS384') })

      const refused = await kickOff({ base, kind: 'system', params: { _type: 'Patient' } })
      t.equal(refused.status, 401, 'kick-off without a token')
      await refused.body?.cancel()

      const got = await plainExport({ base, kind: 'system', params: { _type: 'Patient' }, token })
      t.equal(got.manifest.requiresAccessToken, true)
      t.equal(got.lines.length, counts.Patient)
      const unauthenticated = await fetch(got.manifest.output[0]!.url, { headers: { accept: 'application/fhir+ndjson' } })
      t.equal(unauthenticated.status, 401, 'a download without the token')
      await unauthenticated.body?.cancel()
    })

    // What the gateway tests (e), (f) and (g) take for granted, and the log lines they look for.
    t.test('the simulations the gateway tests use, and their access-log lines', async t => {
      const status = async (url: string) => {
        const res = await fetch(url, { headers: { accept: FHIR_JSON } })
        await res.body?.cancel()
        return res.status
      }
      const kickOffs = peer.accessLog.filter(line => kickOffLine.test(line)).length

      const transient = await kickOff({ base: peer.simBase({ err: 'transient_error' }), kind: 'system', params: { _type: 'Patient' } })
      t.equal(transient.status, 202)
      await transient.body?.cancel()
      t.equal(await status(transient.headers.get('content-location')!), 500, 'transient_error: the first status poll fails')
      await peer.waitForLog(transientLine)

      const expired = await plainExport({ base: peer.simBase({ err: 'file_expired' }), kind: 'system', params: { _type: 'Patient' } })
        .then(() => undefined, (err: unknown) => err)
      t.match(expired, { status: 410 }, 'file_expired: the manifest comes, its download answers 410')
      await peer.waitForLog(expiredLine)
      t.equal((await peer.waitForLog(kickOffLine, { count: kickOffs + 2 })).length, kickOffs + 2, 'each kick-off is logged once')

      const slow = await kickOff({ base: peer.simBase({ m: 3000 }), kind: 'system', params: { _type: 'Patient' } })
      t.equal(slow.status, 202)
      await slow.body?.cancel()
      const statusUrl = slow.headers.get('content-location')!
      t.equal(await status(statusUrl), 202, 'm=3000 with one type: still building at the first poll')
      const cancel = await fetch(statusUrl, { method: 'DELETE' })
      t.equal(cancel.status, 202)
      await cancel.body?.cancel()
      const [line] = await peer.waitForLog(deleteLine)
      t.equal(peer.origin + deleteLine.exec(line!)![1], statusUrl, 'the DELETE line names the status URL')
      t.equal(await status(statusUrl), 404, 'a cancelled export\'s status URL answers 404')
    })
  })

  const notRegistered = registry.find('fhir') === undefined ? 'the fhir upstream is not registered yet' : false

  /** A gateway whose fhir upstream is the peer at `base`. */
  const gatewayFor = (t: Test, peer: SmartPeer, base: string, env: Record<string, string> = {}) =>
    startGateway(t, { env: { FHIR_BASE_URL: base, UPSTREAM_ALLOWED_ORIGINS: peer.origin, ...env } })

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

  t.test('the gateway reads what the plain client reads', { skip: notRegistered }, async t => {
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

  t.test('(e) a cancelled job DELETEs its status URL, which then answers 404', { skip: notRegistered }, async t => {
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

  t.test('(f) a transient error on the status poll: the job completes with every record', { skip: notRegistered }, async t => {
    const peer = await startPeer(t)
    const params = { _type: 'Patient,Immunization' }
    const want = await plainExport({ base: peer.baseUrl, kind: 'system', params })
    const gw = await gatewayFor(t, peer, peer.simBase({ err: 'transient_error' }))
    await expectSameRecords(t, gw, 'system', params, want.lines)
    t.ok(peer.accessLog.some(line => transientLine.test(line)), 'the peer did answer a status poll with 500')
  })

  t.test('(g) files that always expire: the export is run again, then the job fails with a stable code', { skip: notRegistered }, async t => {
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

  t.test('(h) secure mode: a registered key completes; no credentials fail upstream_unauthorized', { skip: notRegistered }, async t => {
    const peer = await startPeer(t)
    const base = peer.simBase({ secure: 1 })
    const clientId = await peer.register(await peer.publicKeySet('RS384'))
    const privateJwk = await peer.privateKey('RS384')
    const token = await backendServicesToken({ tokenUrl: await discoverTokenUrl(base), clientId, privateJwk })
    const params = { _type: 'Patient,Condition' }
    const want = await plainExport({ base, kind: 'system', params, token })

    const gw = await gatewayFor(t, peer, base, { FHIR_CLIENT_ID: clientId, FHIR_PRIVATE_KEY: JSON.stringify(privateJwk) })
    await expectSameRecords(t, gw, 'system', params, want.lines)
    t.notOk(gw.logs.join('\n').includes(privateJwk.d.slice(0, 24)), 'no part of the private key in the logs')

    const anonymous = await gatewayFor(t, peer, base)
    const failed = await waitForJob(anonymous, (await submit(anonymous, 'system', params)).id, { timeoutMs: 180_000 })
    t.equal(failed.status, 'failed')
    t.match(failed.error, { code: 'upstream_unauthorized', upstreamStatus: 401 })
  })
}
