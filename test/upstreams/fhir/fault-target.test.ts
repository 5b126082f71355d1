/** The fhir fault target: its env points an adapter at its simulator, and `expected` is what each body's job stores. */
import t from 'tap'
import { fhirAdapter } from '../../../src/upstreams/fhir/adapter.js'
import { fhirEnv, fhirSettingsFromEnv } from '../../../src/upstreams/fhir/env.js'
import { fhirFaultTarget } from '../../../src/upstreams/fhir/simulator/fault-target.js'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import { fakeJob } from '../../helpers/job-context.js'
import { sameRecords } from './setup.js'

t.test('each body of the fault target completes with exactly its expected records; 429s are counted', async t => {
  const target = await fhirFaultTarget(1)
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: 10 })
  t.teardown(async () => { await client.close(); await target.close() })
  const settings = fhirSettingsFromEnv(fhirEnv.parse(target.env))
  if (settings === null) throw new Error('the target\'s env does not configure fhir')
  const adapter = fhirAdapter(settings, client)
  target.throttle(2)
  for (let i = 0; i < 3; i++) {
    const body = target.body(i)
    const job = fakeJob(body.resource as string, body.params as Record<string, unknown>)
    await adapter.run(job.ctx)
    const want = target.expected({ id: 'j', status: 'completed', error: null, upstreamInfo: job.upstreamInfo }, body, job.records())
    t.ok(want !== null && want.length > 0, `body ${i} expects records`)
    sameRecords(t, job.records(), want ?? [], `body ${i} (${String(body.resource)})`)
  }
  t.ok(target.throttled() >= 2)
  t.equal(target.partial, null, 'no JSON answer follows the first stored page (the files are streamed)')
})
