/**
 * Completion callbacks against a real receiver on loopback: every request it gets is verified with
 * `standardwebhooks`' own `Webhook.verify`. A receiver that answers 500 three times then 200 gets one successful
 * delivery, the view says delivered after 4 attempts and every attempt had the same webhook-id; a 410 stops the
 * retries; a hanging receiver is cut by CALLBACK_TIMEOUT_SECONDS; a redirect is not followed; each job ending
 * (completed, failed, cancelled) sends its event; /metrics counts attempts by outcome; nothing of the URL's query or
 * the secret reaches the logs.
 */
import t from 'tap'
import { Webhook } from 'standardwebhooks'
import { startCallbackReceiver, newCallbackSecret, type CallbackReceiver } from '../helpers/callback-receiver.js'
import { startDrchrono, drchronoEnv } from '../helpers/drchrono.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const secret = newCallbackSecret()

async function gatewayFor (t: Parameters<typeof startGateway>[0], receiver: CallbackReceiver, env: Record<string, string> = {}): Promise<TestGateway> {
  return startGateway(t, {
    env: {
      CALLBACK_ALLOWED_ORIGINS: receiver.origin,
      // The receiver is on loopback: the URL guard lets it through only because the operator allowed its origin.
      UPSTREAM_ALLOWED_ORIGINS: receiver.origin,
      CALLBACK_SECRETS: `alpha:${secret}`,
      CALLBACK_RETRY_SCHEDULE_SECONDS: '0.2,0.2,0.2,0.2',
      CALLBACK_TIMEOUT_SECONDS: '1',
      ...env,
    },
  })
}

/** A job that fails at once: drchrono is not configured on these gateways (no simulator, no credentials). */
async function failingJob (gw: TestGateway, url: string, doctor = 7): Promise<string> {
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { doctor }, callback: { url } }) })
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`)
  return (await res.json()).id
}

const callbackState = async (gw: TestGateway, id: string, done: (cb: any) => boolean): Promise<any> =>
  (await waitForJob(gw, id, { until: job => job.callback !== null && done(job.callback), timeoutMs: 30_000 })).callback

async function metric (gw: TestGateway, outcome: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const line = text.split('\n').find(l => l.startsWith(`bulk_gateway_callback_deliveries_total{outcome="${outcome}"}`))
  return line === undefined ? 0 : Number(line.split(' ').at(-1))
}

t.test('500 three times, then 200: one successful delivery, 4 attempts, one webhook-id, counted by outcome', async t => {
  const receiver = await startCallbackReceiver(t, secret, { path: '/hooks/bulk?token=query-secret-marker' })
  receiver.answerWith((_, i) => i < 3 ? 500 : 200)
  const gw = await gatewayFor(t, receiver)
  const id = await failingJob(gw, receiver.url)

  const callback = await callbackState(gw, id, cb => cb.status !== 'pending')
  t.same(callback, { status: 'delivered', attempts: 4, lastError: null }, 'the view: delivered after 4 attempts')
  await new Promise(resolve => setTimeout(resolve, 800))
  t.equal(receiver.received.length, 4, 'no attempt after the delivery')
  t.ok(receiver.received.every(r => r.verified), 'every request verifies with Webhook.verify and the client\'s secret')
  t.same(new Set(receiver.received.map(r => r.headers['webhook-id'])), new Set([`msg_${id}`]), 'one webhook-id across the retries')
  t.equal(receiver.delivered().length, 1, 'exactly one successful delivery')
  const event = receiver.delivered()[0]!.event!
  t.equal(event.type, 'job.failed')
  t.match(event.data, { id, status: 'failed', error: { code: 'upstream_not_configured' }, links: { self: `/jobs/${id}` } }, 'the data is the job view')
  t.same(event.data.callback, { status: 'pending', attempts: 3, lastError: 'the receiver answered 500' }, 'as it read when sent')
  t.equal(event.timestamp, (await (await gw.request(`/jobs/${id}`)).json()).completedAt, 'the event time is the job\'s end')
  t.equal(receiver.received[0]!.headers['content-type'], 'application/json')

  t.equal(await metric(gw, 'retrying'), 3, 'metrics: 3 attempts to retry')
  t.equal(await metric(gw, 'delivered'), 1, 'metrics: 1 delivered')
  t.equal(await metric(gw, 'failed'), 0, 'metrics: none failed')
  const logs = gw.logs.join('')
  t.notOk(logs.includes('query-secret-marker'), 'the URL\'s query is never logged')
  t.notOk(logs.includes(secret.slice(6, 30)), 'the secret is never logged')
  t.ok(logs.includes('callback delivered'))
})

t.test('a rotation: a client with two secrets signs with both, so a receiver on either verifies', async t => {
  const next = newCallbackSecret()
  // The receiver still verifies with the old secret; the operator has listed the new one first.
  const receiver = await startCallbackReceiver(t, secret)
  const gw = await gatewayFor(t, receiver, { CALLBACK_SECRETS: `alpha:${next},alpha:${secret}` })
  const id = await failingJob(gw, receiver.url)
  t.same(await callbackState(gw, id, cb => cb.status !== 'pending'), { status: 'delivered', attempts: 1, lastError: null })
  const request = receiver.received[0]!
  t.ok(request.verified, 'the receiver on the old secret verifies it')
  t.match(request.headers['webhook-signature'], /^v1,\S+ v1,\S+$/, 'two signatures, space-separated')
  t.doesNotThrow(() => new Webhook(next).verify(request.body, request.headers), 'a receiver on the new secret verifies it too')
  t.throws(() => new Webhook(newCallbackSecret()).verify(request.body, request.headers), 'and one on another secret does not')
  const logs = gw.logs.join('')
  t.notOk(logs.includes(next.slice(6, 30)) || logs.includes(secret.slice(6, 30)), 'neither secret is logged')
})

t.test('a 410 stops the retries; the retries stop when the schedule is used up', async t => {
  let gone = '-'
  const receiver = await startCallbackReceiver(t, secret)
  receiver.answerWith(request => request.headers['webhook-id']!.endsWith(gone) ? 410 : 503)
  const gw = await gatewayFor(t, receiver)
  const first = await failingJob(gw, receiver.url)
  gone = first
  t.same(await callbackState(gw, first, cb => cb.status !== 'pending'),
    { status: 'failed', attempts: 1, lastError: 'the receiver answered 410 Gone: no more attempts' }, '410: failed after one attempt')

  gone = '-'
  const second = await failingJob(gw, receiver.url)
  t.same(await callbackState(gw, second, cb => cb.status !== 'pending'),
    { status: 'failed', attempts: 5, lastError: 'the receiver answered 503' }, 'the first attempt and the schedule\'s 4 retries, then failed')
  await new Promise(resolve => setTimeout(resolve, 800))
  t.equal(receiver.received.filter(r => r.headers['webhook-id'] === `msg_${first}`).length, 1, 'nothing after the 410')
  t.equal(receiver.received.filter(r => r.headers['webhook-id'] === `msg_${second}`).length, 5, 'nothing after the last retry')
  t.equal(await metric(gw, 'failed'), 2)
})

t.test('a hanging receiver is cut by the timeout; a redirect is not followed', async t => {
  const receiver = await startCallbackReceiver(t, secret)
  receiver.answerWith((request, i) => i === 0 ? 'hang' : i === 1 ? 302 : 204)
  const gw = await gatewayFor(t, receiver, { CALLBACK_RETRY_SCHEDULE_SECONDS: '0.2,0.2' })
  const started = Date.now()
  const id = await failingJob(gw, receiver.url)
  const callback = await callbackState(gw, id, cb => cb.status !== 'pending')
  t.same(callback, { status: 'delivered', attempts: 3, lastError: null })
  t.ok(Date.now() - started < 15_000, `the hung attempt was given up (${Date.now() - started} ms in all)`)
  t.equal(receiver.received.length, 3, 'the hang, the redirect, the delivery: the redirect\'s Location was never asked for')
  t.ok(receiver.received.every(r => r.headers['webhook-id'] === `msg_${id}`))
  const failures = gw.logs.map(l => JSON.parse(l)).filter(l => l.msg === 'callback attempt failed; will retry').map(l => l.error)
  t.same(failures, ['no answer within 1 s', 'the receiver answered 302; redirects are not followed'], 'the hang timed out, the redirect failed its attempt')
})

t.test('completed and cancelled jobs send their events; a receiver that is down costs only retries', async t => {
  const receiver = await startCallbackReceiver(t, secret)
  const sim = await startDrchrono(t, { recordCount: { patients: 30 }, inProgressPolls: 0, generationMs: 10 })
  const gw = await gatewayFor(t, receiver, drchronoEnv(sim))
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { page_size: 10 }, callback: { url: receiver.url } }) })
  t.equal(res.status, 202)
  const completed = (await res.json()).id
  t.same(await callbackState(gw, completed, cb => cb.status === 'delivered'), { status: 'delivered', attempts: 1, lastError: null })
  const event = receiver.delivered().find(r => r.headers['webhook-id'] === `msg_${completed}`)!.event!
  t.equal(event.type, 'job.completed')
  t.match(event.data, { id: completed, status: 'completed', progress: { records: 30 } })

  await receiver.close()
  const down = await failingJob(gw, receiver.url)
  const failing = await callbackState(gw, down, cb => cb.attempts >= 2)
  t.match(failing, { status: 'pending', lastError: 'the connection failed' }, 'a receiver that is down: the attempts fail and are retried')
  const health = await fetch(`${gw.url}/health/ready`)
  t.equal(health.status, 200, 'the gateway serves on meanwhile')
})

t.test('a cancelled job sends job.cancelled, with its view', async t => {
  const receiver = await startCallbackReceiver(t, secret)
  const gw = await gatewayFor(t, receiver, { WORKER_CONCURRENCY: '0' })
  const id = await failingJob(gw, receiver.url)
  t.equal((await gw.request(`/jobs/${id}`, { method: 'DELETE' })).status, 202)
  t.same(await callbackState(gw, id, cb => cb.status === 'delivered'), { status: 'delivered', attempts: 1, lastError: null })
  const [delivery] = receiver.delivered()
  t.equal(delivery?.event?.type, 'job.cancelled')
  t.match(delivery?.event?.data, { id, status: 'cancelled' })
  t.equal((await (await gw.request(`/jobs/${id}`)).json()).callback.status, 'delivered', 'a cached view of the finished job shows the delivery')
})

t.test('erasure at expiresAt leaves a pending callback be: it is delivered with the view as it reads then', async t => {
  const receiver = await startCallbackReceiver(t, secret)
  let open = false
  receiver.answerWith(() => open ? 204 : 503)
  const gw = await gatewayFor(t, receiver, { RESULT_TTL_SECONDS: '1', CALLBACK_RETRY_SCHEDULE_SECONDS: '0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3' })
  const id = await failingJob(gw, receiver.url)
  const erased = async (): Promise<any> => (await gw.app.db.pool.query(
    'SELECT erased_at, callback_status, callback_attempts, callback_url IS NOT NULL AS has_url FROM jobs WHERE id = $1', [id])).rows[0]
  let row = await erased()
  while (row.erased_at === null) {
    await new Promise(resolve => setTimeout(resolve, 100))
    row = await erased()
  }
  t.match(row, { callback_status: 'pending', has_url: true }, 'the sweeper erased the job; its callback is still pending, its URL kept')
  t.ok(row.callback_attempts >= 1, `after ${row.callback_attempts} failed attempts`)
  open = true
  t.equal((await callbackState(gw, id, cb => cb.status !== 'pending')).status, 'delivered')
  const event = receiver.delivered()[0]!.event!
  t.match(event, { type: 'job.failed', data: { id, status: 'failed', params: null, error: { code: 'upstream_not_configured', message: null } } }, 'the erased view')
  const [after] = await gw.app.db.pool.query('SELECT callback_url FROM jobs WHERE id = $1', [id]).then(r => r.rows)
  t.equal(after.callback_url, null, 'once delivered, the URL is cleared')
})

t.test('two replicas on one database: each callback is delivered once', async t => {
  const receiver = await startCallbackReceiver(t, secret)
  const a = await gatewayFor(t, receiver)
  const b = await startGateway(t, {
    databaseUrl: a.databaseUrl,
    env: { CALLBACK_ALLOWED_ORIGINS: receiver.origin, UPSTREAM_ALLOWED_ORIGINS: receiver.origin, CALLBACK_SECRETS: `alpha:${secret}` },
  })
  const ids: string[] = []
  for (let i = 0; i < 12; i++) ids.push(await failingJob(i % 2 === 0 ? a : b, receiver.url, 100 + i))
  for (const id of ids) await callbackState(a, id, cb => cb.status === 'delivered')
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.equal(receiver.received.length, ids.length, 'one request per job')
  t.same(new Set(receiver.received.map(r => r.headers['webhook-id'])), new Set(ids.map(id => `msg_${id}`)), 'each job\'s webhook-id once')
  t.ok(receiver.received.every(r => r.verified))
  t.equal(await metric(a, 'delivered') + await metric(b, 'delivered'), ids.length, 'the replicas\' counts add up')
})

t.test('shutdown is bounded: an attempt under way is aborted and given back, uncounted and due at once', async t => {
  const receiver = await startCallbackReceiver(t, secret)
  receiver.answerWith(() => 'hang')
  const gw = await gatewayFor(t, receiver, { CALLBACK_TIMEOUT_SECONDS: '60' })
  const id = await failingJob(gw, receiver.url)
  await receiver.waitFor(1)
  const started = Date.now()
  await gw.app.callbacks.stop()
  t.ok(Date.now() - started < 5000, `stopped in ${Date.now() - started} ms, not after the 60 s timeout`)
  t.equal(gw.app.callbacks.status, 'stopped')
  await gw.app.callbacks.stop()
  t.pass('a second stop returns too')
  const [row] = (await gw.app.db.pool.query(
    'SELECT callback_status, callback_attempts, callback_lease_owner, callback_next_at <= now() AS due FROM jobs WHERE id = $1', [id])).rows
  t.same(row, { callback_status: 'pending', callback_attempts: 0, callback_lease_owner: null, due: true }, 'given back for any replica')
})

t.test('an answer whose body never ends: its status counts, the body is cut off', async t => {
  const receiver = await startCallbackReceiver(t, secret)
  receiver.answerWith((_, i) => ({ endless: i === 0 ? 500 : 200 }))
  const gw = await gatewayFor(t, receiver, { CALLBACK_TIMEOUT_SECONDS: '30' })
  const started = Date.now()
  const id = await failingJob(gw, receiver.url)
  t.same(await callbackState(gw, id, cb => cb.status !== 'pending'), { status: 'delivered', attempts: 2, lastError: null })
  t.ok(Date.now() - started < 15_000, `the endless bodies were not read to the 30 s timeout (${Date.now() - started} ms)`)
  const failures = gw.logs.map(l => JSON.parse(l)).filter(l => l.msg === 'callback attempt failed; will retry').map(l => l.error)
  t.same(failures, ['the receiver answered 500'])
})

t.test('a callback whose origin was taken off CALLBACK_ALLOWED_ORIGINS since is not sent', async t => {
  const receiver = await startCallbackReceiver(t, secret)
  const before = await gatewayFor(t, receiver, { WORKER_CONCURRENCY: '0' })
  const id = await failingJob(before, receiver.url)
  await before.app.close()
  const after = await startGateway(t, {
    databaseUrl: before.databaseUrl,
    env: { WORKER_CONCURRENCY: '0', CALLBACK_ALLOWED_ORIGINS: 'https://hooks.example.com', UPSTREAM_ALLOWED_ORIGINS: receiver.origin, CALLBACK_SECRETS: `alpha:${secret}` },
  })
  t.equal((await after.request(`/jobs/${id}`, { method: 'DELETE' })).status, 202)
  t.same(await callbackState(after, id, cb => cb.status !== 'pending'),
    { status: 'failed', attempts: 1, lastError: 'the URL\'s origin is no longer in CALLBACK_ALLOWED_ORIGINS' })
  t.equal(receiver.received.length, 0, 'nothing was sent')
})
