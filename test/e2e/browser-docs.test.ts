/**
 * Swagger UI in a real browser: Debian's Chromium, headless, opens the gateway's /docs in sandbox mode,
 * authorizes with a client key through the "Authorize" dialog, runs "Try it out" on POST /jobs with the
 * document's worked example, and the job it starts exists for that client and completes; then a newcomer's FHIR
 * export (the fhir example edited to `_type=Patient`) runs to completion the same way. The browser may only
 * talk to the gateway on loopback: Swagger UI's assets and the OpenAPI document are served under /docs.
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { authorizeInSwaggerUi, openPage } from '../helpers/browser.js'
import { clientKeys, startGateway, waitForJob } from '../helpers/gateway.js'
import { requireProgram } from '../helpers/programs.js'

// Hang detectors only: the machine is shared and slow, nothing here is a timing assertion.
const waitMs = 60_000

t.test('Swagger UI authorizes, tries out POST /jobs with the worked example, and the job completes', async t => {
  const executablePath = requireProgram(t, 'Chromium', ['/usr/bin/chromium', 'chromium'], 'chromium')
  if (executablePath === undefined) return
  const gw = await startGateway(t, { env: { SANDBOX: 'true' } })

  const { page, offGateway: offLoopback, failed, errors: consoleErrors } = await openPage(t, executablePath, gw.url, waitMs)

  t.equal(await authorizeInSwaggerUi(page, gw.url, clientKeys.alpha), 200, '/docs is served')
  const locked = page.locator('.auth-wrapper .btn.authorize.locked')
  t.ok(await locked.waitFor().then(() => true, () => false), 'the Authorize button shows the lock closed')

  // POST /jobs: expand it, try it out with the drchrono worked example from the document.
  const operation = page.locator('.opblock.opblock-post').filter({ has: page.locator('.opblock-summary-path[data-path="/jobs"]') })
  await operation.locator('.opblock-summary').first().click()
  await operation.locator('.try-out__btn').click()
  const body = operation.locator('textarea.body-param__text')
  await body.waitFor()
  const example = await workedExample(gw.url, 'drchrono_appointments')
  // The request body's media type carries one worked example per upstream and resource: pick drchrono's.
  const picker = operation.locator('.examples-select-element').first()
  t.ok(await picker.waitFor().then(() => true, () => false), 'Swagger UI offers the worked examples to pick')
  await picker.selectOption('drchrono_appointments')
  await t.resolves(async () => {
    for (;;) {
      const text = await body.inputValue()
      try { if (JSON.stringify(JSON.parse(text)) === JSON.stringify(example)) return } catch {}
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }, 'the editor holds the picked example')
  await operation.locator('.btn.execute').click()

  const live = operation.locator('.live-responses-table')
  const status = live.locator('.response .response-col_status')
  await status.filter({ hasText: /\d{3}/ }).first().waitFor()
  t.equal((await status.first().innerText()).trim(), '202', 'the response panel shows 202 Accepted')
  const shown = (await live.locator('.response-col_description .microlight, .response-col_description pre').first().innerText()).trim()
  const job = JSON.parse(shown)
  t.match(job, { id: /\S/, upstream: 'drchrono', resource: example.resource }, 'the panel shows the new job')

  const screenshot = join(t.testdir(), 'swagger-ui-post-jobs.png')
  await page.screenshot({ path: screenshot, fullPage: true })
  const png = await stat(screenshot)
  t.ok(png.isFile() && png.size > 0, `a screenshot was written (${png.size} bytes)`)

  // The job belongs to the key used in the dialog, and runs to completion against the sandbox simulator.
  const owned = await gw.request(`/jobs/${job.id}`)
  t.equal(owned.status, 200, 'the job exists for the authorized client')
  t.match(await owned.json(), { upstream: example.upstream, resource: example.resource, params: example.params }, 'it is the example job')
  t.equal((await gw.request(`/jobs/${job.id}`, { key: clientKeys.beta })).status, 404, 'another client cannot see it')
  const done = await waitForJob(gw, job.id, { timeoutMs: waitMs })
  t.equal(done.status, 'completed', `the job completes${done.error != null ? `: ${JSON.stringify(done.error)}` : ''}`)

  // A newcomer's FHIR export (issue 12): the fhir system example picked, its params edited to one type, executed;
  // the job runs the sandbox's SMART Backend Services flow and export against the built-in simulator.
  await picker.selectOption('fhir_system')
  const fhirBody = { upstream: 'fhir', resource: 'system', params: { _type: 'Patient' } }
  await body.fill(JSON.stringify(fhirBody, null, 2))
  await operation.locator('.btn.execute').click()
  await t.resolves(async () => {
    for (;;) {
      const text = await live.locator('.response-col_description .microlight, .response-col_description pre').first().innerText()
      try { if (JSON.parse(text).upstream === 'fhir') return } catch {}
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }, 'the panel shows the FHIR job')
  t.equal((await status.first().innerText()).trim(), '202', 'POST /jobs answered 202 for the FHIR export')
  const fhirJob = JSON.parse((await live.locator('.response-col_description .microlight, .response-col_description pre').first().innerText()).trim())
  t.match(fhirJob, fhirBody, 'the job is the edited body')
  const fhirDone = await waitForJob(gw, fhirJob.id, { timeoutMs: waitMs })
  t.equal(fhirDone.status, 'completed', `the FHIR export completes${fhirDone.error != null ? `: ${JSON.stringify(fhirDone.error)}` : ''}`)
  t.ok(fhirDone.progress.records > 0, `with the simulator's patients (${fhirDone.progress.records})`)
  await page.screenshot({ path: join(t.testdir(), 'swagger-ui-fhir-export.png'), fullPage: true })

  t.same(offLoopback, [], 'the browser made no request off loopback')
  t.same(failed, [], 'no request failed')
  t.same(consoleErrors, [], 'no console errors')
})

/** A worked example of `POST /jobs`, as the gateway's OpenAPI document declares it. */
async function workedExample (base: string, name: string): Promise<{ upstream: string, resource: string, params: unknown }> {
  type Doc = { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { examples?: Record<string, { value: unknown }> }> } }>> }
  const doc = await (await fetch(`${base}/docs/json`)).json() as Doc
  const example = doc.paths['/jobs']?.post?.requestBody?.content['application/json']?.examples?.[name]
  if (example === undefined) throw new Error(`the OpenAPI document has no worked example ${name} of POST /jobs`)
  return example.value as { upstream: string, resource: string, params: unknown }
}
