/**
 * The peer tests' own footing: the SMART Health IT bulk-data-server (test/helpers/smart-peer.ts), run from the
 * peers folder outside the repository, and the plain client that is the oracle of the gateway tests
 * (test/helpers/fhir-plain-client.ts), checked against the server's own counts and data, and every simulation and
 * access-log line fhir-gateway.test.ts relies on.
 */
import t from 'tap'
import { backendServicesToken, discoverTokenUrl, kickOff, plainExport } from '../helpers/fhir-plain-client.js'
import { requirePeer, startPeer } from '../helpers/smart-peer.js'
import {
  FHIR_JSON, countByType, deleteLine, expiredLine, groups, keys, kickOffLine, resourceCounts, splitSince, transientLine,
} from './peer-data.js'

// The first start of a machine installs the peer (minutes); the rest are hang detectors, not timings.
t.setTimeout(1_200_000)

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
}
