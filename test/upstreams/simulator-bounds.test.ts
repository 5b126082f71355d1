/**
 * Every simulator's memory is bounded: a flood of requests leaves at most `maxEntries` lists, tasks, links, runs
 * and deliveries (counters by key: ten times as many), the oldest forgotten first, and a forgotten entry is
 * answered the way its upstream answers for one it no longer knows. The newest still work.
 */
import { createServer } from 'node:http'
import { once } from 'node:events'
import t from 'tap'
import { SANDBOX_CREDENTIALS as CLINIA, startCliniaSimulator } from '../../src/upstreams/clinia/simulator/index.js'
import { SANDBOX_API_KEY, SANDBOX_USER_AGENT, startClinikoSimulator } from '../../src/upstreams/cliniko/simulator/index.js'
import { SANDBOX_CREDENTIALS as DRCHRONO, startDrchronoSimulator } from '../../src/upstreams/drchrono/simulator/index.js'
import { SANDBOX_CREDENTIALS as METRIPORT } from '../../src/upstreams/metriport/env.js'
import { sandboxPatientId, startMetriportSimulator } from '../../src/upstreams/metriport/simulator/index.js'
import { SANDBOX_OCL_TOKEN, startOclSimulator } from '../../src/upstreams/ocl/simulator/index.js'

const MAX = 3
const FLOOD = 12

t.test('DrChrono: uuids and counters by page', async t => {
  const s = await startDrchronoSimulator({ maxEntries: MAX, inProgressPolls: 0, recordCount: 10 })
  t.teardown(() => s.close())
  const auth = { authorization: `Bearer ${DRCHRONO.accessToken}` }
  const uuids: string[] = []
  for (let i = 0; i < FLOOD; i++) {
    const res = await fetch(`${s.url}/api/appointments_list?since=2024-01-01`, { method: 'POST', headers: auth })
    t.equal(res.status, 201)
    uuids.push(((await res.json()) as { uuid: string }).uuid)
  }
  t.equal(s.state.lists.size, MAX, `${FLOOD} lists POSTed, ${MAX} kept`)
  const poll = (uuid: string) => fetch(`${s.url}/api/appointments_list?uuid=${uuid}`, { headers: auth })
  const oldest = await poll(uuids[0]!)
  t.same([oldest.status, await oldest.json()], [404, { detail: 'Invalid uuid specified' }], 'the oldest uuid is forgotten, as an expired one')
  t.equal((await poll(uuids.at(-1)!)).status, 200, 'the newest is served')

  // Unauthenticated POSTs are counted by page before anything else: the counters forget their oldest keys.
  for (let page = 1; page <= MAX * 10 + 20; page++) await fetch(`${s.url}/api/patients_list?page=${page}`, { method: 'POST' })
  t.equal(Object.keys(s.state.stats.requests).length, MAX * 10, 'counters by page keep ten times maxEntries keys')
  t.equal(s.state.requestsFor('patients', MAX * 10 + 20), 1, 'the newest page is counted')
})

t.test('Cliniko: counters by page', async t => {
  const s = await startClinikoSimulator({ maxEntries: MAX, recordCount: 100, rateLimit: 0 })
  t.teardown(() => s.close())
  const headers = { authorization: `Basic ${Buffer.from(`${SANDBOX_API_KEY}:`).toString('base64')}`, 'user-agent': SANDBOX_USER_AGENT, accept: 'application/json' }
  for (let page = 1; page <= MAX * 10 + 10; page++) t.equal((await fetch(`${s.apiUrl}/patients?page=${page}&per_page=1`, { headers })).status, 200)
  t.equal(Object.keys(s.state.stats.pages).length, MAX * 10, 'pages served, counted under ten times maxEntries keys')
  t.equal(s.state.pagesServed('patients', MAX * 10 + 10), 1)
  t.equal(s.state.pagesServed('patients', 1), 0, 'the oldest key is forgotten')
})

t.test('Clinia: tasks, the backlog, records and counters', async t => {
  const s = await startCliniaSimulator({ maxEntries: MAX, maxRecords: 5, pendingPolls: 0 })
  t.teardown(() => s.close())
  const base = `${s.url}/sources/${CLINIA.sourceKey}/v1/resources/bulk`
  const headers = { 'x-clinia-api-key': CLINIA.apiKey, 'content-type': 'application/json' }
  const tasks: string[] = []
  for (let i = 0; i < FLOOD; i++) {
    const operations = [{ action: 'CREATE', create: { id: `p${i}`, type: 'provider', data: { name: `N${i}` } } }]
    const res = await fetch(base, { method: 'POST', headers, body: JSON.stringify({ operations }) })
    t.equal(res.status, 202)
    tasks.push(((await res.json()) as { taskId: string }).taskId)
  }
  t.equal(s.state.tasks.size, MAX, `${FLOOD} tasks submitted and never read, ${MAX} kept`)
  t.equal(s.state.resources.size, 5, 'the backlog beyond the cap was processed; records kept up to maxRecords')
  t.ok(s.state.resources.has(`provider/p${FLOOD - MAX - 1}`) && !s.state.resources.has('provider/p0'), 'the oldest records are forgotten')
  const read = (id: string) => fetch(`${base}/${id}?withReceipts=true`, { headers })
  t.equal((await read(tasks[0]!)).status, 404, 'the oldest task is forgotten (Clinia\'s 404)')
  const newest = await read(tasks.at(-1)!)
  t.match([newest.status, await newest.json()], [200, { status: 'SUCCESS', receipts: [{ id: `p${FLOOD - 1}`, status: 'SUCCESS' }] }], 'the newest is read')
  t.ok(Object.keys(s.state.stats.chunkPosts).length <= MAX * 10, 'chunk counters are bounded')
})

t.test('Metriport: runs, delivery records and messages kept for a retry', async t => {
  const receiver = createServer((_req, res) => { res.statusCode = 500; res.end() })
  receiver.listen(0, '127.0.0.1')
  await once(receiver, 'listening')
  t.teardown(() => new Promise(resolve => receiver.close(resolve)))
  const webhookUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/`
  const s = await startMetriportSimulator({ maxEntries: MAX, patientCount: FLOOD, delayMs: 'never', webhookUrl })
  t.teardown(() => s.close())
  const start = (i: number) => fetch(`${s.url}/medical/v1/document/download-url/bulk?patientId=${sandboxPatientId(i)}`, { method: 'POST', headers: { 'x-api-key': METRIPORT.apiKey } })
  for (let i = 0; i < FLOOD; i++) t.equal((await start(i)).status, 200)
  t.equal(s.state.runs.size, MAX, `${FLOOD} runs started, ${MAX} kept`)
  for (let i = 0; i < FLOOD; i++) await s.state.send(JSON.stringify({ n: i }))
  t.same(s.state.deliveries.map(d => d.body), [9, 10, 11].map(n => JSON.stringify({ n })), 'delivery records: the newest kept')

  // With the webhook disabled (after a failed delivery) every result is kept for Metriport's manual retry.
  s.state.reset()
  s.state.webhookEnabled = false
  for (let i = 0; i < FLOOD; i++) {
    t.equal((await start(i)).status, 200)
    await s.state.deliverNow()
  }
  t.equal(s.state.stats.suppressed, FLOOD, 'every result was held back')
  const retried = await s.state.retryFailed()
  t.equal(retried.length, 1, 'the retry stops at its first failed delivery')
  t.equal(s.state.stats.suppressed, FLOOD + MAX - 1, `and held back the rest again: ${MAX} were kept for it, not ${FLOOD}`)
})

t.test('OCL: signed links', async t => {
  const s = await startOclSimulator({ maxEntries: MAX })
  t.teardown(() => s.close())
  s.state.seedExport({ ownerType: 'orgs', owner: 'CIEL', source: 'CIEL' }, 'v2024-01-15', 'ready')
  const links: string[] = []
  for (let i = 0; i < FLOOD; i++) {
    const res = await fetch(`${s.url}/orgs/CIEL/sources/CIEL/v2024-01-15/export/`, { headers: { authorization: `Token ${SANDBOX_OCL_TOKEN}` }, redirect: 'manual' })
    t.equal(res.status, 302)
    links.push(res.headers.get('location')!)
  }
  t.equal(s.state.links.size, MAX, `${FLOOD} links issued, ${MAX} kept`)
  const oldest = await fetch(links[0]!)
  t.equal(oldest.status, 403, 'the oldest link is refused, as S3 refuses an unknown one')
  t.match(await oldest.text(), /SignatureDoesNotMatch/)
  const newest = await fetch(links.at(-1)!)
  t.equal(newest.status, 200, 'the newest downloads')
  await newest.arrayBuffer()
})
