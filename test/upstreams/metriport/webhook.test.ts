/** Metriport's webhook handler on its own: signature first, then ping, results, failures and malformed bodies. */
import t, { type Test } from 'tap'
import { WebhookRejected } from '../../../src/domain/errors.js'
import type { WebhookResult } from '../../../src/contract/webhook.js'
import type { MetriportSettings } from '../../../src/upstreams/metriport/env.js'
import { signWebhook } from '../../../src/upstreams/metriport/signature.js'
import { DOCUMENT_URLS_TYPE, receiveMetriportWebhook, runKey, withAddedFields } from '../../../src/upstreams/metriport/webhook.js'

const settings: MetriportSettings = { baseUrl: 'http://unused', apiKey: 'k', webhookKey: 'webhook-key-123', webhookTimeoutSeconds: 60 }
const receivedAt = new Date('2024-05-01T12:00:00.000Z')
const expiresAt = '2024-05-01T12:10:00.000Z'

/** `signature` null: no header at all. */
function receive (body: string, signature: string | string[] | null = signWebhook(body, settings.webhookKey)): WebhookResult {
  const headers = signature === null ? {} : { 'x-metriport-signature': signature }
  return receiveMetriportWebhook({ rawBody: Buffer.from(body), headers, settings, receivedAt })
}

function rejected (t: Test, fn: () => unknown, status: number, what: string): void {
  try {
    fn()
    t.fail(`${what}: expected a rejection`)
  } catch (err) {
    t.ok(err instanceof WebhookRejected, `${what}: WebhookRejected`)
    t.equal((err as WebhookRejected).status, status, `${what}: ${status}`)
  }
}

// Text as Metriport would send it, with escapes and a number format that a re-serialisation would change.
const doc1 = '{"id":"1.2.3","fileName":"a.xml","description":"R\\u00e9sum\\u00e9 \\"final\\"","status":"current","indexed":"2024-01-01T00:00:00.000Z","mimeType":"application/xml","size":1.5e3,"type":{"text":"Note"},"url":"https://s3.example/a?X-Amz-Signature=abc"}'
const doc2 = '{ "id": "1.2.4", "url": "https://s3.example/b?X-Amz-Signature=def" }'
const result = (patients: string, meta: Record<string, unknown> = {}) =>
  `{"meta":${JSON.stringify({ messageId: 'msg-1', requestId: 'req-1', when: '2024-05-01T11:59:59.000Z', type: DOCUMENT_URLS_TYPE, data: { batch: 'x' }, ...meta })},"patients":${patients}}`

t.test('signature: valid passes; invalid, missing, repeated, wrong length or not hex is 401', async t => {
  const body = result(`[{"patientId":"p1","status":"completed","documents":[${doc1}]}]`)
  t.equal(receive(body).kind, 'deliver')
  t.equal(receive(body, signWebhook(body, settings.webhookKey).toUpperCase()).kind, 'deliver', 'hex is case-insensitive')
  rejected(t, () => receive(body, signWebhook(body, 'another-key')), 401, 'signed with another key')
  rejected(t, () => receive(body + ' ', signWebhook(body, settings.webhookKey)), 401, 'one byte more than was signed')
  rejected(t, () => receive(body, null), 401, 'missing')
  rejected(t, () => receive(body, [signWebhook(body, settings.webhookKey), 'x']), 401, 'repeated header')
  rejected(t, () => receive(body, signWebhook(body, settings.webhookKey).slice(0, 62)), 401, 'too short')
  rejected(t, () => receive(body, signWebhook(body, settings.webhookKey) + '00'), 401, 'too long')
  rejected(t, () => receive(body, 'z'.repeat(64)), 401, 'not hex')
  rejected(t, () => receive('not json at all', 'a'.repeat(64)), 401, 'the signature is checked before parsing')
})

t.test('a ping is answered with its pong', async t => {
  t.same(receive('{"ping":"abc-123","meta":{"messageId":"m","when":"2024-05-01T12:00:00Z","type":"ping"}}'),
    { kind: 'reply', status: 200, body: { pong: 'abc-123' } })
  t.same(receive('{"ping":"p-2","meta":{"type":"ping"}}'), { kind: 'reply', status: 200, body: { pong: 'p-2' } })
  rejected(t, () => receive('{"meta":{"type":"ping"}}'), 400, 'a ping without its id')
})

t.test('malformed bodies with a valid signature are 400', async t => {
  rejected(t, () => receive('{"meta":'), 400, 'truncated JSON')
  rejected(t, () => receive('[1,2]'), 400, 'not an object')
  rejected(t, () => receive('{"patients":[]}'), 400, 'no meta')
  rejected(t, () => receive(result('[]', { messageId: undefined })), 400, 'no messageId')
  rejected(t, () => receive(result('[]', { requestId: '' })), 400, 'no requestId')
})

t.test('a message is routed to the run of one patient: requestId and patientId together', async t => {
  const r = receive(result('[{"patientId":"p1","status":"completed","documents":[]}]'))
  t.match(r, { kind: 'deliver', key: runKey('req-1', 'p1') })
  t.not(runKey('req-1', 'p1'), runKey('req-1', 'p2'), 'the same run id for another patient is another key')
  t.not(runKey('a","b', 'c'), runKey('a', 'b","c'), 'no two (requestId, patientId) pairs share a key')
  t.match(receive(result('[{"patientId":"p1","status":"completed"},{"patientId":"p1","status":"completed"}]')), { key: runKey('req-1', 'p1') },
    'the same patient twice is still one patient')
  // Without exactly one patient a message names no run: refused, rather than finishing whichever job waits on the requestId.
  rejected(t, () => receive(result('{}')), 400, 'patients not an array')
  rejected(t, () => receive(result('[]')), 400, 'no patient')
  rejected(t, () => receive(result('[{"status":"completed","documents":[]}]')), 400, 'no patientId')
  rejected(t, () => receive(result('[{"patientId":"p\\u0000","status":"completed"}]')), 400, 'a patientId PostgreSQL cannot hold')
  rejected(t, () => receive(result('[{"patientId":"p1","status":"completed"},{"patientId":"p2","status":"completed"}]')), 400, 'two patients')
})

t.test('other message types are acknowledged and ignored', async t => {
  t.same(receive('{"meta":{"messageId":"m","type":"medical.consolidated-data"},"patients":[]}'), { kind: 'reply', status: 200, body: {} })
})

t.test('records: one per document across the patient\'s entries, as sent, with patientId and urlExpiresAt', async t => {
  const body = result(`[{"patientId":"p1","externalId":"e1","status":"completed","documents":[${doc1},${doc2}]},` +
    '{"patientId":"p1","status":"completed","documents":[{}]},{"patientId":"p1","status":"completed"}]')
  const r = receive(body)
  if (r.kind !== 'deliver' || !('records' in r.outcome)) throw new Error('expected records')
  t.equal(r.messageId, 'msg-1')
  t.equal(r.key, runKey('req-1', 'p1'))
  t.same(r.reply, { status: 200, body: {} })
  t.same(r.outcome.records, [
    `${doc1.slice(0, -1)},"patientId":"p1","urlExpiresAt":"${expiresAt}"}`,
    `${doc2.slice(0, -1)},"patientId":"p1","urlExpiresAt":"${expiresAt}"}`,
    `{"patientId":"p1","urlExpiresAt":"${expiresAt}"}`,
  ], 'Metriport\'s text kept byte for byte; an empty object and a patient without documents handled')
  t.same(JSON.parse(r.outcome.records[0] as string), { ...JSON.parse(doc1), patientId: 'p1', urlExpiresAt: expiresAt })
})

t.test('withAddedFields never repeats a key', async t => {
  const text = '{"patientId":"theirs","a":1}'
  t.same(JSON.parse(withAddedFields(text, JSON.parse(text), { patientId: 'p', urlExpiresAt: 'x' })), { patientId: 'p', a: 1, urlExpiresAt: 'x' })
  t.equal(withAddedFields(text, JSON.parse(text), { patientId: 'p', urlExpiresAt: 'x' }).match(/patientId/g)?.length, 1)
})

t.test('a failed patient fails the job with upstream_failed', async t => {
  const r = receive(result('[{"patientId":"p1","status":"failed"}]'))
  if (r.kind !== 'deliver') throw new Error('expected a delivery')
  t.match(r.outcome, { error: { code: 'upstream_failed' } })
  t.equal(r.key, runKey('req-1', 'p1'))
  t.same(r.reply, { status: 200, body: {} }, 'still acknowledged: a non-200 would disable Metriport\'s webhook')
})

t.test('routable messages with wrong content fail the job, not the delivery', async t => {
  for (const [patients, why] of [
    ['[{"patientId":"p","status":"processing","documents":[]}]', 'unknown status'],
    ['[{"patientId":"p","status":"completed","documents":{}}]', 'documents not an array'],
    ['[{"patientId":"p","status":"completed","documents":["x"]}]', 'a document that is not an object'],
  ] as const) {
    const r = receive(result(patients))
    if (r.kind !== 'deliver') throw new Error('expected a delivery')
    t.match(r.outcome, { error: { code: 'invalid_upstream_response' } }, why)
    t.notMatch(JSON.stringify(r.outcome), /X-Amz|s3\.example/, 'no document content in the message')
  }
})
