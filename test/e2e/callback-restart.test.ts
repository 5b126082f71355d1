/**
 * Completion callbacks survive the gateway's death: the callback is written with the job's end, so a gateway
 * SIGKILLed between a job's end and its callback's delivery delivers it after a restart, once, with the same
 * webhook-id. Every request the receiver gets is verified with `standardwebhooks`' `Webhook.verify`.
 */
import t from 'tap'
import { newCallbackSecret, startCallbackReceiver } from '../helpers/callback-receiver.js'
import { testDatabase } from '../helpers/database.js'
import { spawnGateway, type GatewayProcess } from '../helpers/process.js'

const secret = newCallbackSecret()

async function view (gw: GatewayProcess, id: string): Promise<any> {
  return (await gw.request(`/jobs/${id}`)).json()
}

async function waitForView (gw: GatewayProcess, id: string, done: (job: any) => boolean, timeoutMs = 60_000): Promise<any> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const job = await view(gw, id)
    if (done(job)) return job
    if (Date.now() > deadline) throw new Error(`job ${id}: ${JSON.stringify(job.callback)} after the deadline`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** A port a receiver will listen on later: taken by one now, then closed (the receiver is down). */
async function portOfADownReceiver (t: Parameters<typeof startCallbackReceiver>[0]): Promise<number> {
  const probe = await startCallbackReceiver(t, secret)
  await probe.close()
  return Number(new URL(probe.origin).port)
}

function envFor (databaseUrl: string, port: number, extra: Record<string, string> = {}): Record<string, string> {
  const origin = `http://127.0.0.1:${port}`
  return {
    DATABASE_URL: databaseUrl,
    CALLBACK_ALLOWED_ORIGINS: origin,
    UPSTREAM_ALLOWED_ORIGINS: origin,
    CALLBACK_SECRETS: `alpha:${secret}`,
    CALLBACK_RETRY_SCHEDULE_SECONDS: '1,1,1,1,1,1,1,1,1,1',
    CALLBACK_TIMEOUT_SECONDS: '2',
    ...extra,
  }
}

/** A job that fails at once (drchrono is not configured), with a callback to `port`. */
async function submit (gw: GatewayProcess, port: number): Promise<string> {
  const res = await gw.request('/jobs', {
    method: 'POST',
    body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { doctor: 1 }, callback: { url: `http://127.0.0.1:${port}/hooks/bulk` } }),
  })
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`)
  return (await res.json() as { id: string }).id
}

t.test('SIGKILL after the job ended, while its receiver is down: delivered once after the restart', async t => {
  const databaseUrl = await testDatabase(t)
  const port = await portOfADownReceiver(t)
  const env = envFor(databaseUrl, port)

  const first = await spawnGateway(t, env)
  const id = await submit(first, port)
  const before = await waitForView(first, id, job => job.status === 'failed' && job.callback.attempts >= 1)
  await first.kill('SIGKILL')
  t.match(before.callback, { status: 'pending', lastError: 'the connection failed' }, 'the job ended; its callback was not delivered when the gateway died')

  const receiver = await startCallbackReceiver(t, secret, { port })
  const second = await spawnGateway(t, env)
  const [delivery] = await receiver.waitFor(1)
  t.ok(delivery?.verified, 'the delivery verifies with Webhook.verify and the client\'s secret')
  t.equal(delivery?.headers['webhook-id'], `msg_${id}`)
  t.match(delivery?.event, { type: 'job.failed', data: { id, status: 'failed' } })
  const after = await waitForView(second, id, job => job.callback.status !== 'pending')
  t.same(after.callback, { status: 'delivered', attempts: before.callback.attempts + 1, lastError: null }, 'delivered by the restarted gateway')
  await new Promise(resolve => setTimeout(resolve, 2500))
  t.equal(receiver.received.length, 1, 'exactly one request for this webhook-id, none after the delivery')
  await second.kill('SIGTERM')
})

t.test('SIGKILL while an attempt is under way: the lease runs out and the restarted gateway delivers it', async t => {
  const databaseUrl = await testDatabase(t)
  const receiver = await startCallbackReceiver(t, secret)
  const port = Number(new URL(receiver.origin).port)
  // A long timeout: the first attempt is still waiting for its answer when the gateway dies.
  const env = envFor(databaseUrl, port, { CALLBACK_TIMEOUT_SECONDS: '3' })
  receiver.answerWith((_, i) => i === 0 ? 'hang' : 204)

  const first = await spawnGateway(t, env)
  const id = await submit(first, port)
  await receiver.waitFor(1)
  await first.kill('SIGKILL')
  const killedAt = Date.now()

  const second = await spawnGateway(t, env)
  const done = await waitForView(second, id, job => job.callback.status !== 'pending')
  t.same(done.callback, { status: 'delivered', attempts: 1, lastError: null }, 'the attempt the dead gateway held was not counted; the next one delivered')
  t.ok(Date.now() - killedAt >= 10_000, `it waited for the dead gateway's lease (${Date.now() - killedAt} ms)`)
  t.equal(receiver.received.length, 2, 'the unanswered attempt and the delivery')
  t.ok(receiver.received.every(r => r.verified && r.headers['webhook-id'] === `msg_${id}`), 'both verify, under one webhook-id')
  t.equal(receiver.delivered().length, 1, 'exactly one successful delivery')
  await second.kill('SIGTERM')
})
