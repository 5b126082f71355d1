/**
 * The Metriport simulator must be as strict as Metriport: sticky runs, problem-like errors, signed webhooks
 * sent once, failed deliveries not retried and the webhook disabled until a manual retry.
 */
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { SANDBOX_CREDENTIALS } from '../../../src/upstreams/metriport/env.js'
import { verifyWebhookSignature } from '../../../src/upstreams/metriport/signature.js'
import { SANDBOX_PATIENT_IDS, patientDocuments, startMetriportSimulator, type MetriportSimulatorOptions } from '../../../src/upstreams/metriport/simulator/index.js'

const patientId = SANDBOX_PATIENT_IDS[1] as string
const START = '/medical/v1/document/download-url/bulk'

/** A webhook receiver that checks signatures and answers as told. */
async function receiver (t: Test) {
  const got: Array<{ body: string, signed: boolean }> = []
  const behaviour = { status: 200, delayMs: 0 }
  const app = Fastify({ logger: false })
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  app.post('/hook', async (request, reply) => {
    const raw = request.body as Buffer
    let signed = true
    try { verifyWebhookSignature(raw, request.headers['x-metriport-signature'], SANDBOX_CREDENTIALS.webhookKey) } catch { signed = false }
    got.push({ body: raw.toString('utf8'), signed })
    await new Promise(resolve => setTimeout(resolve, behaviour.delayMs))
    const parsed = JSON.parse(raw.toString('utf8')) as { ping?: string }
    return reply.code(behaviour.status).send(parsed.ping !== undefined ? { pong: parsed.ping } : {})
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}/hook`, got, behaviour }
}

async function setup (t: Test, options: MetriportSimulatorOptions = {}) {
  const hook = await receiver(t)
  const sim = await startMetriportSimulator({ webhookUrl: hook.url, delayMs: 'never', ...options })
  t.teardown(() => sim.close())
  const start = (query: string, init: RequestInit = {}) => fetch(`${sim.url}${START}?${query}`, {
    method: 'POST', ...init, headers: { 'x-api-key': SANDBOX_CREDENTIALS.apiKey, ...init.headers as Record<string, string> },
  })
  return { sim, hook, start }
}

t.test('starts: 403 without the key, problem-like 400/404, sticky requestId while processing', async t => {
  const { sim, start } = await setup(t)
  const denied = await fetch(`${sim.url}${START}?patientId=${patientId}`, { method: 'POST' })
  t.equal(denied.status, 403)
  t.same(await denied.json(), { message: 'Forbidden' })
  const unknown = await start('patientId=nobody')
  t.equal(unknown.status, 404)
  t.match(await unknown.json(), { status: 404, name: 'NotFoundError', title: 'Not Found', detail: String })
  const missing = await start('')
  t.equal(missing.status, 400)
  const tooMany = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']))
  const refused = await start(`patientId=${patientId}`, { body: JSON.stringify({ metadata: tooMany }), headers: { 'content-type': 'application/json' } })
  t.equal(refused.status, 400)
  t.match(await refused.json(), { status: 400, detail: /up to 50 keys/ })

  const first = await (await start(`patientId=${patientId}`, { body: JSON.stringify({ metadata: { a: 'b' } }), headers: { 'content-type': 'application/json' } })).json()
  t.match(first, { status: 'processing', requestId: String })
  const second = await (await start(`patientId=${patientId}`)).json()
  t.same(second, first, 'a second start while processing returns the same requestId')
  t.same(sim.state.stats, { ...sim.state.stats, starts: 1, stickyStarts: 1, unauthorized: 1, notFound: 1, badRequests: 2 })
})

t.test('the webhook: signed over the exact bytes, documented shape, metadata echoed; then a new run', async t => {
  const { sim, hook, start } = await setup(t)
  const { requestId } = await (await start(`patientId=${patientId}`, { body: JSON.stringify({ metadata: { a: 'b' } }), headers: { 'content-type': 'application/json' } })).json() as { requestId: string }
  const [delivery] = await sim.state.deliverNow()
  t.match(delivery, { kind: 'result', requestId, status: 200, ok: true })
  t.equal(hook.got.length, 1)
  t.ok(hook.got[0]?.signed, 'signature verifies')
  const body = JSON.parse(hook.got[0]?.body ?? '{}')
  t.match(body.meta, { messageId: String, requestId, when: String, type: 'medical.document-bulk-download-urls', data: { a: 'b' } })
  const docs = patientDocuments(sim.state.seed, 1)
  t.equal(body.patients.length, 1)
  t.match(body.patients[0], { patientId, status: 'completed' })
  t.same(body.patients[0].documents.map((d: { url: string }) => ({ ...d, url: undefined })), docs.map(d => ({ ...d, url: undefined })))
  t.ok(body.patients[0].documents.every((d: { url: string }) => /X-Amz-Expires=600&.*X-Amz-Signature=[0-9a-f]{64}$/.test(d.url)))
  const again = await (await start(`patientId=${patientId}`)).json() as { requestId: string }
  t.not(again.requestId, requestId, 'once a run has ended, a start begins a new one')
})

t.test('a failed delivery is not retried and disables the webhook until a manual retry', async t => {
  const { sim, hook, start } = await setup(t, { deliveryTimeoutMs: 300 })
  hook.behaviour.status = 500
  await start(`patientId=${patientId}`)
  const [failed] = await sim.state.deliverNow()
  t.match(failed, { status: 500, ok: false })
  t.equal(sim.state.stats.failedDeliveries, 1)
  t.equal(sim.state.webhookEnabled, false)

  hook.behaviour.status = 200
  await start(`patientId=${SANDBOX_PATIENT_IDS[2]}`)
  t.same(await sim.state.deliverNow(), [], 'a disabled webhook sends nothing')
  t.equal(sim.state.stats.suppressed, 1)
  t.equal(hook.got.length, 1, 'no automatic retry')

  const retried = await sim.state.retryFailed()
  t.equal(retried.length, 2)
  t.ok(retried.every(r => r.ok))
  t.equal(retried[0]?.messageId, failed?.messageId, 'a manual retry resends the same message')

  hook.behaviour.delayMs = 600
  await start(`patientId=${patientId}`)
  const [slow] = await sim.state.deliverNow()
  t.match(slow, { status: null, error: 'timeout', ok: false }, 'an answer later than the timeout is a failure')
  t.ok((slow?.durationMs ?? 0) < 590)
})

t.test('duplicates, forged signatures and pings', async t => {
  const { sim, hook, start } = await setup(t, { duplicateDeliveries: true })
  await start(`patientId=${patientId}`)
  const twice = await sim.state.deliverNow()
  t.equal(twice.length, 2)
  t.equal(twice[0]?.body, twice[1]?.body, 'the same bytes twice')
  const forged = await sim.state.sendForged('some-request')
  t.equal(hook.got.at(-1)?.signed, false)
  t.equal(forged.kind, 'forged')
  const ping = await sim.state.ping()
  t.match(ping, { kind: 'ping', status: 200, ok: true })
  t.same(ping.answer, { pong: JSON.parse(ping.body).ping })
})
