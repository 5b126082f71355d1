/**
 * A completion callback from Swagger UI in a real browser: Debian's Chromium, headless, opens /docs of a sandbox
 * gateway, authorizes with a client key, runs "Try it out" on POST /jobs with the drchrono worked example plus a
 * `callback` to a receiver on loopback, and the receiver gets the job's `job.completed` event, which verifies with
 * `standardwebhooks`' `Webhook.verify` and the client's secret. Set up as browser-docs.test.ts is (Chromium found
 * through helpers/programs.ts; the browser may only talk to the gateway).
 */
import t from 'tap'
import { newCallbackSecret, startCallbackReceiver } from '../helpers/callback-receiver.js'
import { authorizeInSwaggerUi, openPage } from '../helpers/browser.js'
import { clientKeys, startGateway, waitForJob } from '../helpers/gateway.js'
import { requireProgram } from '../helpers/programs.js'

// Hang detectors only: the machine is shared and slow, nothing here is a timing assertion.
const waitMs = 60_000

t.test('Swagger UI submits a job with a callback; the signed event reaches the receiver', async t => {
  const executablePath = requireProgram(t, 'Chromium', ['/usr/bin/chromium', 'chromium'], 'chromium')
  if (executablePath === undefined) return
  const secret = newCallbackSecret()
  const receiver = await startCallbackReceiver(t, secret)
  const gw = await startGateway(t, {
    env: {
      SANDBOX: 'true',
      CALLBACK_ALLOWED_ORIGINS: receiver.origin,
      UPSTREAM_ALLOWED_ORIGINS: receiver.origin,
      CALLBACK_SECRETS: `alpha:${secret}`,
    },
  })

  const { page, offGateway, errors: consoleErrors } = await openPage(t, executablePath, gw.url, waitMs)

  t.equal(await authorizeInSwaggerUi(page, gw.url, clientKeys.alpha), 200, '/docs is served')

  const operation = page.locator('.opblock.opblock-post').filter({ has: page.locator('.opblock-summary-path[data-path="/jobs"]') })
  await operation.locator('.opblock-summary').first().click()
  await operation.locator('.try-out__btn').click()
  const body = operation.locator('textarea.body-param__text')
  await body.waitFor()
  await operation.locator('.examples-select-element').first().selectOption('drchrono_appointments')
  // The picked example, with a callback added by hand, as a user would.
  const example = await (async (): Promise<Record<string, unknown>> => {
    for (;;) {
      try {
        const parsed = JSON.parse(await body.inputValue()) as Record<string, unknown>
        if (parsed.upstream === 'drchrono') return parsed
      } catch {}
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  })()
  t.match(example, { upstream: 'drchrono', resource: 'appointments' }, 'the editor holds the drchrono example')
  await body.fill(JSON.stringify({ ...example, callback: { url: receiver.url } }, null, 2))
  await operation.locator('.btn.execute').click()

  const live = operation.locator('.live-responses-table')
  const status = live.locator('.response .response-col_status')
  await status.filter({ hasText: /\d{3}/ }).first().waitFor()
  t.equal((await status.first().innerText()).trim(), '202', 'the response panel shows 202 Accepted')
  const shown = JSON.parse((await live.locator('.response-col_description .microlight, .response-col_description pre').first().innerText()).trim())
  t.match(shown, { upstream: 'drchrono', callback: { status: 'pending', attempts: 0, lastError: null } }, 'the panel shows the job, its callback pending')

  const [delivery] = await receiver.waitFor(1, waitMs)
  t.ok(delivery?.verified, 'the receiver verified the signature with Webhook.verify and the client\'s secret')
  t.equal(delivery?.headers['webhook-id'], `msg_${shown.id}`)
  t.match(delivery?.event, { type: 'job.completed', data: { id: shown.id, status: 'completed', upstream: 'drchrono' } }, 'the event carries the completed job')
  const done = await waitForJob(gw, shown.id, { until: job => job.callback?.status === 'delivered', timeoutMs: waitMs })
  t.same(done.callback, { status: 'delivered', attempts: 1, lastError: null }, 'the job view says delivered')

  t.same(offGateway, [], 'the browser talked to the gateway only')
  t.same(consoleErrors, [], 'no page errors')
})
