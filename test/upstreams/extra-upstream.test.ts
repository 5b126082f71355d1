/**
 * A new upstream is one folder plus one registry line (README.md, "Adding an upstream"). `ledger` (./extra/) is
 * an upstream the product does not have, registered only in this test's registry, and the generic suites run over
 * it without a shared file knowing its name: the OpenAPI document, job validation (the bad-input fuzzer's body
 * properties), sandbox mode, log hygiene and the upstream fault campaign.
 */
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { redactPaths } from '../../src/logger.js'
import { renderOpenApi } from '../../src/openapi.js'
import { MAX_JOB_OPERATIONS } from '../../src/upstreams/clinia/params.js'
import { checkDocument } from '../api/openapi-checks.js'
import { Tally } from '../faults/campaign.js'
import { fuzzJobBodies } from '../faults/job-body-fuzz.js'
import { runUpstreamCampaign } from '../faults/upstream-campaign.js'
import { startGateway, waitForJob } from '../helpers/gateway.js'
import { registry } from './extra/registry.js'

t.test('the OpenAPI document describes the extra upstream from its definition', async t => {
  const doc = JSON.parse(await renderOpenApi(registry))
  await checkDocument(t, doc, registry)
  const example = doc.paths['/jobs'].post.requestBody.content['application/json'].examples.ledger_entries
  t.same(example?.value, { upstream: 'ledger', resource: 'entries', params: { since: '2024-03-01', limit: 25 } }, 'its worked example')
})

t.test('sandbox mode serves its simulator, and the logs keep its secrets and records out', async t => {
  const gw = await startGateway(t, { registry, logLevel: 'debug', env: { SANDBOX: 'true' } })
  const listed = await (await gw.request('/upstreams')).json()
  t.match(listed.data.find((u: { name: string }) => u.name === 'ledger'), { name: 'ledger', mode: 'sandbox' })
  t.ok(gw.logs.some(l => l.includes('ledger: SANDBOX mode') && l.includes('LEDGER_BASE_URL')), 'start-up says how to connect the real one')

  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'ledger', resource: 'entries', params: { limit: 40 } }) })
  t.equal(res.status, 202)
  const job = await waitForJob(gw, (await res.json()).id)
  t.match(job, { status: 'completed', progress: { records: 240, pagesDone: 6 } }, 'every entry of the simulator, in pages of 40')
  const ndjson = await (await gw.request(`/jobs/${job.id}/results`, { headers: { accept: 'application/x-ndjson' } })).text()
  const lines = ndjson.trimEnd().split('\n')
  t.equal(lines.length, 240)
  t.equal(new Set(lines.map(l => JSON.parse(l).id)).size, 240, 'no entry twice')

  const key = (gw.app.upstreams.settingsFor('ledger') as { key: string }).key
  const logs = gw.logs.join('\n')
  t.notMatch(logs, key, 'the drawn key appears in no log line')
  t.notMatch(logs, JSON.parse(lines[0] as string).id as string, 'nor does a record, even at debug')
})

t.test('its declared secret header is redacted by the logger of a gateway serving it', async t => {
  const lines: string[] = []
  const log = pino({ redact: { paths: redactPaths(registry.upstreams), censor: '[redacted]' } }, new Writable({
    write (chunk: Buffer, _encoding, done) { lines.push(chunk.toString()); done() },
  }))
  log.info({ req: { headers: { 'x-ledger-key': 'ledger-secret-1', accept: 'application/json' } } }, 'request')
  t.notMatch(lines[0], 'ledger-secret-1', 'the key is not written')
  t.match(lines[0], /"x-ledger-key":"\[redacted\]"/, 'it is redacted')
  t.match(lines[0], /"accept":"application\/json"/, 'other headers are written')
})

t.test('job bodies: the validation fuzzer over a registry with the extra upstream', async t => {
  const gw = await startGateway(t, { registry, startWorkers: false, logLevel: 'warn', env: { MAX_ACTIVE_JOBS_PER_CLIENT: '0' } })
  const bad = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'ledger', resource: 'entries', params: { limit: 0, colour: 'red' } }) })
  t.equal(bad.status, 400)
  const problem = await bad.json()
  t.equal(problem.code, 'validation_failed')
  t.same(problem.errors.map((e: { pointer: string }) => e.pointer).sort(), ['/params', '/params/limit'], 'its params\' own schema: the unknown key and the bad limit')
  const unknown = await gw.request('/jobs?upstream=ledger')
  t.equal(unknown.status, 200, 'GET /jobs filters by its name')
  // A large body goes to the body-preparing thread, which loads this registry from its module.
  const operations = Array.from({ length: MAX_JOB_OPERATIONS / 20 }, (_, i) => ({ action: 'DELETE', delete: { id: `p-${i}`, type: 'provider' } }))
  const large = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'clinia', resource: 'resources', operations }) })
  t.equal(large.status, 202, `a ${operations.length}-operation body, prepared off the event loop, is accepted`)

  const tally = new Tally('extra-upstream validation', { campaign: false })
  const unescaped: string[] = []
  await fuzzJobBodies(t, gw, registry, { tally, seeds: [101, 107], unescaped })
  tally.report(t)
})

t.test('the upstream fault campaign fires at the extra upstream', async t => {
  await runUpstreamCampaign(t, registry, { only: ['ledger'], tally: new Tally('extra-upstream faults', { campaign: false }) })
})
