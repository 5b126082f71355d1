/**
 * Metriport's payloads with fields the gateway does not know, through the real gateway: the simulator adds unknown
 * fields at the top level, in meta, in each patient and in each document of its webhook (and in the start answer).
 * The job completes with exactly the documented records: every document as Metriport wrote it, its unknown fields
 * included byte for byte, plus patientId and urlExpiresAt; the signature is verified over the exact bytes received.
 */
import t from 'tap'
import { extractArray } from '../../src/upstreams/json-records.js'
import { SANDBOX_CREDENTIALS } from '../../src/upstreams/metriport/env.js'
import { SANDBOX_PATIENT_IDS, startMetriportSimulator } from '../../src/upstreams/metriport/simulator/index.js'
import { startGateway, waitForJob } from '../helpers/gateway.js'

const [P0] = SANDBOX_PATIENT_IDS as [string]

for (const extraFields of [false, true]) {
  t.test(`extra fields ${extraFields ? 'everywhere' : 'absent (the documented shape)'}: exact records, signature over the exact bytes`, async t => {
    const sim = await startMetriportSimulator({ seed: 5, delayMs: 200, extraFields })
    t.teardown(() => sim.close())
    const gw = await startGateway(t, {
      env: { METRIPORT_BASE_URL: sim.url, METRIPORT_API_KEY: SANDBOX_CREDENTIALS.apiKey, METRIPORT_WEBHOOK_KEY: SANDBOX_CREDENTIALS.webhookKey },
    })
    sim.state.setWebhookUrl(`${gw.url}/webhooks/metriport`)

    const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'metriport', resource: 'document-download-urls', params: { patientId: P0, metadata: { batch: 'x1' } } }) })
    t.equal(res.status, 202)
    const done = await waitForJob(gw, (await res.json()).id)
    t.equal(done.status, 'completed', JSON.stringify(done.error))
    await sim.state.settled()
    t.equal(sim.state.deliveries.length, 1)
    const delivery = sim.state.deliveries[0]
    t.match(delivery, { kind: 'result', status: 200, ok: true }, 'the delivery was verified and acknowledged')

    const body = delivery?.body ?? ''
    const parsed = JSON.parse(body)
    if (extraFields) {
      t.match(parsed, {
        version: String,
        links: { patients: Array },
        meta: { attempt: 1, source: Object },
        patients: [{ cxId: String, extension: Object, summary: Object }],
      },
      'the webhook carried unknown fields at every level')
      t.match(body, '"pages":1.50,"retentionDays":1e3', 'in forms a re-serialiser would change')
    } else {
      t.same(Object.keys(parsed), ['meta', 'patients'], 'the documented shape')
    }
    t.same(done.upstreamInfo, { requestId: parsed.meta.requestId })

    // Each document's text exactly as sent, with the two fields spliced in before its closing brace.
    const documentTexts = extractArray(extractArray(body, 'patients')[0] as string, 'documents')
    const page = await (await gw.request(`/jobs/${done.id}/results`)).json()
    t.equal(page.total, documentTexts.length, `${documentTexts.length} records, one per document`)
    const expiresAt = page.data[0]?.urlExpiresAt as string
    const ndjson = (await (await gw.request(`/jobs/${done.id}/results`, { headers: { accept: 'application/x-ndjson' } })).text()).split('\n')
    t.equal(ndjson.pop(), '')
    t.same(ndjson, documentTexts.map(d => `${d.slice(0, -1)},"patientId":${JSON.stringify(P0)},"urlExpiresAt":"${expiresAt}"}`),
      'every record: Metriport\'s document text byte for byte, unknown fields included, the two fields added last')
    t.notMatch(ndjson.join('\n'), /not-a-document|"cxId"|"version"|"attempt"/, 'fields of the message, meta and patient stay out of the records')
    if (extraFields) t.ok(page.data.every((r: Record<string, unknown>) => r.retentionDays === 1000 && r.tags !== undefined), 'unknown document fields pass through')
  })
}
