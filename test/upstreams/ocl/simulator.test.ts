import t, { type Test } from 'tap'
import yauzl from 'yauzl'
import {
  SANDBOX_OCL_TOKEN, expectedChanges, expectedExport, startOclSimulator, type OclSimulatorOptions,
} from '../../../src/upstreams/ocl/simulator/index.js'

const auth = { authorization: `Token ${SANDBOX_OCL_TOKEN}` }
const CIEL = '/orgs/CIEL/sources/CIEL'

async function sim (t: Test, options: OclSimulatorOptions = {}) {
  const s = await startOclSimulator(options)
  t.teardown(() => s.close())
  const call = async (method: string, path: string, headers: Record<string, string> = auth) => {
    const res = await fetch(path.startsWith('http') ? path : `${s.url}${path}`, { method, headers, redirect: 'manual' })
    const body = Buffer.from(await res.arrayBuffer())
    let json: any
    try { json = JSON.parse(body.toString('utf8')) } catch { json = undefined }
    return { status: res.status, headers: res.headers, body, json }
  }
  return { ...s, call }
}

/** The text of export.json inside a zip. */
async function exportJson (zip: Buffer): Promise<string> {
  const file = await yauzl.fromBufferPromise(zip, { lazyEntries: true })
  const names: string[] = []
  for await (const entry of file.eachEntry()) {
    names.push(entry.fileName)
    const chunks: Buffer[] = []
    for await (const chunk of await file.openReadStreamPromise(entry)) chunks.push(chunk as Buffer)
    if (entry.fileName === 'export.json') return Buffer.concat(chunks).toString('utf8')
  }
  throw new Error(`no export.json among ${names.join(', ')}`)
}

t.test('Token auth: wrong token 401, private sources need one, public ones do not', async t => {
  const s = await sim(t)
  const wrong = await s.call('GET', `${CIEL}/versions/`, { authorization: 'Token nope' })
  t.same([wrong.status, wrong.json], [401, { detail: 'Invalid token.' }])
  t.equal((await s.call('GET', `${CIEL}/versions/`, { authorization: `Bearer ${SANDBOX_OCL_TOKEN}` })).status, 401)
  t.equal((await s.call('GET', `${CIEL}/versions/`, {})).status, 200, 'public source, anonymous')
  const anonymous = await s.call('GET', '/users/jdoe/sources/ClinicTerms/concepts/?updatedSince=2020-01-01', {})
  t.same([anonymous.status, anonymous.json], [401, { detail: 'Authentication credentials were not provided.' }])
  t.equal((await s.call('GET', '/users/jdoe/sources/ClinicTerms/concepts/?updatedSince=2020-01-01')).status, 200)
  t.same((await s.call('GET', '/orgs/CIEL/sources/Nope/versions/')).json, { detail: 'Not found.' })
  t.equal((await s.call('GET', '/teams/CIEL/sources/CIEL/versions/')).status, 404)
})

t.test('versions: released filter, newest first, header pagination', async t => {
  const s = await sim(t)
  const all = await s.call('GET', `${CIEL}/versions/`)
  t.same(all.json.map((v: { id: string }) => v.id), ['v2024-03-01-draft', 'v2024-01-15', 'v2023-10-02'])
  const latest = await s.call('GET', `${CIEL}/versions/?released=true&limit=1`)
  t.same(latest.json.map((v: { id: string, released: boolean }) => [v.id, v.released]), [['v2024-01-15', true]])
  t.equal(latest.headers.get('num_found'), '2')
  t.match(latest.headers.get('next'), /\/versions\/\?released=true&limit=1&page=2$/)
  t.equal((await s.call('GET', `${CIEL}/versions/?released=maybe`)).status, 400)
})

t.test('lists: filters, header pagination, the silent limit fallback', async t => {
  const s = await sim(t)
  const want = expectedChanges({}, { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', sinceMs: Date.parse('2023-06-01T00:00:00Z'), includeRetired: false })
  const concepts = want.filter(r => JSON.parse(r).type === 'Concept')
  t.ok(concepts.length > 300, `${concepts.length} concepts`)
  const page2 = await s.call('GET', `${CIEL}/concepts/?updatedSince=2023-06-01&includeRetired=false&limit=100&page=2`)
  t.equal(page2.body.toString('utf8'), `[${concepts.slice(100, 200).join(',')}]`, 'DRF\'s compact text, newest update first')
  t.same(['num_found', 'num_returned', 'pages', 'page_number'].map(h => page2.headers.get(h)),
    [String(concepts.length), '100', String(Math.ceil(concepts.length / 100)), '2'])
  t.equal(page2.headers.get('next'), `${s.url}${CIEL}/concepts/?updatedSince=2023-06-01&includeRetired=false&limit=100&page=3`)
  t.equal(page2.headers.get('previous'), `${s.url}${CIEL}/concepts/?updatedSince=2023-06-01&includeRetired=false&limit=100&page=1`)
  t.ok(page2.json.every((r: { updated_on: string, retired: boolean }) => r.updated_on >= '2023-06-01' && !r.retired))
  const last = await s.call('GET', `${CIEL}/concepts/?updatedSince=2023-06-01&limit=1000`)
  t.equal(last.headers.get('next'), null, 'no next on the last page')
  t.equal(last.headers.get('previous'), null)

  for (const limit of ['1001', '5000', '0']) {
    const res = await s.call('GET', `${CIEL}/concepts/?updatedSince=2019-01-01&limit=${limit}`)
    t.equal(res.json.length, 25, `limit=${limit} silently becomes 25`)
  }
  t.equal(s.state.stats.limitFallbacks, 3)
  t.equal((await s.call('GET', `${CIEL}/concepts/?updatedSince=2019-01-01`)).json.length, 25, 'the default is 25')
  t.equal((await s.call('GET', `${CIEL}/concepts/?updatedsince=2019-01-01`)).status, 400, 'an unknown parameter is refused (stricter than OCL)')
  t.equal((await s.call('GET', `${CIEL}/concepts/?updatedSince=yesterday`)).status, 400)
  t.equal((await s.call('GET', `${CIEL}/mappings/?updatedSince=2019-01-01&includeRetired=yes`)).status, 400)
  const retired = (await s.call('GET', `${CIEL}/mappings/?updatedSince=2019-01-01&includeRetired=true&limit=1000`)).json
  t.ok(retired.some((m: { retired: boolean }) => m.retired) && retired.every((m: { type: string }) => m.type === 'Mapping'))
})

t.test('the export state machine, and single-use signed links that refuse an Authorization header', async t => {
  const s = await sim(t, { exportPolls: 2 })
  const path = `${CIEL}/v2024-01-15/export/`
  t.equal((await s.call('GET', path)).status, 204, 'no export yet')
  t.equal((await s.call('POST', path)).status, 202, 'queued')
  t.equal((await s.call('POST', path)).status, 409, 'already queued')
  t.equal((await s.call('GET', path)).status, 208)
  t.equal((await s.call('GET', path)).status, 208)
  const ready = await s.call('GET', path)
  t.equal(ready.status, 302)
  t.equal(ready.headers.get('last-updated'), '2024-01-15T10:00:00')
  t.equal(ready.headers.get('last-updated-timezone'), 'America/New_York')
  const link = ready.headers.get('location') as string
  t.match(link, new RegExp(`^${s.url}/signed/[\\w-]+\\?.*X-Amz-Signature=[0-9a-f]{48}$`), 'another path, the secret in the query')
  const posted = await s.call('POST', path)
  t.same([posted.status, posted.headers.get('url')], [303, `${CIEL}/v2024-01-15/export/`], 'exists')

  const withAuth = await s.call('GET', link, auth)
  t.equal(withAuth.status, 403, 'a request carrying an Authorization header is refused')
  t.match(withAuth.body.toString(), /<Code>InvalidArgument<\/Code>/)
  t.equal(s.state.stats.signedWithAuth, 1)
  const download = await s.call('GET', link, {})
  t.equal(download.status, 200, 'the same link without the header works: the header alone was the problem')
  t.equal(download.headers.get('content-type'), 'application/zip')
  const parsed = JSON.parse(await exportJson(download.body))
  t.match(parsed, { type: 'Source Version', id: 'v2024-01-15', released: true })
  const want = expectedExport({}, { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', version: 'v2024-01-15' })
  // As JSON text: tap's deep comparison of 4 000 objects takes seconds.
  t.equal(JSON.stringify([...parsed.concepts, ...parsed.mappings]), JSON.stringify(want.map(r => JSON.parse(r))), 'the expected records')
  t.equal((await s.call('GET', link, {})).status, 403, 'single use')
  t.equal((await s.call('GET', link.replace(/Signature=\w+/, 'Signature=00'), {})).status, 403)

  t.equal((await s.call('GET', `${CIEL}/v9/export/`)).status, 404, 'unknown version')
  t.equal((await s.call('GET', `${CIEL}/HEAD/export/`)).status, 405)
  t.equal((await s.call('DELETE', path)).status, 204)
  t.equal((await s.call('DELETE', path)).status, 404)
  t.equal((await s.call('GET', path)).status, 204, 'deleted')
  t.match(s.state.stats, { exportsCreated: 1, linksIssued: 1, downloads: 1, downloadsRefused: 3 })
})

t.test('older servers: 303, a 200 with the zip, a 200 with an exportURL header', async t => {
  const s = await sim(t)
  const target = { ownerType: 'orgs' as const, owner: 'CIEL', source: 'CIEL' }
  const path = `${CIEL}/v2023-10-02/export/`
  s.state.seedExport(target, 'v2023-10-02', 'ready')
  s.state.readyMode = '303'
  t.equal((await s.call('GET', path)).status, 303)
  s.state.readyMode = 'zip200'
  const zip = await s.call('GET', path)
  t.same([zip.status, zip.headers.get('lastupdated'), zip.headers.get('content-type')], [200, '2023-10-02T10:00:00', 'application/zip'])
  t.equal(JSON.parse(await exportJson(zip.body)).concepts.length, 2300 - 80)
  s.state.readyMode = 'exportUrl200'
  const header = await s.call('GET', path)
  t.equal(header.status, 200)
  t.equal((await s.call('GET', header.headers.get('exporturl') as string, {})).status, 200)
})

t.test('faults: 429 with OCL\'s headers, 5xx, stale 204s, refused downloads', async t => {
  const s = await sim(t, { retryAfterSeconds: 3 })
  s.state.throttleNext(1)
  const throttled = await s.call('GET', `${CIEL}/versions/`)
  t.same([throttled.status, throttled.headers.get('retry-after'), throttled.headers.get('x-limitremaining-minute')], [429, '3', '0'])
  t.same(throttled.json, { detail: 'Request was throttled. Expected available in 3 seconds.' })
  s.state.failNext(1, 502)
  t.same([(await s.call('GET', `${CIEL}/versions/`)).status, (await s.call('GET', `${CIEL}/versions/`)).status], [502, 200])
  s.state.seedExport({ ownerType: 'orgs', owner: 'CIEL', source: 'CIEL' }, 'v2024-01-15', 'ready')
  s.state.staleNoExport(1)
  t.same([(await s.call('GET', `${CIEL}/v2024-01-15/export/`)).status, (await s.call('GET', `${CIEL}/v2024-01-15/export/`)).status], [204, 302])
  s.state.refuseDownloads(1)
  const link = (await s.call('GET', `${CIEL}/v2024-01-15/export/`)).headers.get('location') as string
  t.equal((await s.call('GET', link, {})).status, 403)
  t.match(s.state.stats, { throttled: 1, serverErrors: 1, downloadsRefused: 1 })
  s.state.reset()
  t.match(s.state.stats, { throttled: 0, linksIssued: 0 })
})
