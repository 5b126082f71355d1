/**
 * `GET /jobs/{id}/results?follow=true` as NDJSON while a job runs: records as pages become readable, woken by the
 * job's notifications (not by polling), an end that follows the job's (clean when it completes, broken off when it
 * fails or is cancelled), the answers that stay as they were, and the stream limits that still hold. The job is a
 * row this test writes, as another replica's worker would: pages stored, then `saved:`/`ended:` notified.
 */
import { randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import t, { type Test } from 'tap'
import pg from 'pg'
import { clientKeys, startGateway, type TestGateway } from '../helpers/gateway.js'
import { paddedRecords, storePage } from '../helpers/stored-results.js'

const pageOf = (p: number): string[] => Array.from({ length: 3 }, (_, i) => `{"page":${p},"i":${i}}`)
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** Polls `check` until it holds; fails the test after `seconds` rather than hang. */
async function eventually (t: Test, what: string, check: () => boolean | Promise<boolean>, seconds = 30): Promise<void> {
  const deadline = Date.now() + seconds * 1000
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(20)
  }
  t.fail(`${what}: not within ${seconds} s`)
}

/** A running job of `alpha` held by a worker that is not this gateway's, and the writes its worker would make. */
async function runningJob (admin: pg.Client) {
  const id = randomUUID()
  await admin.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, lease_owner, lease_expires_at, started_at)
    VALUES ($1, 'alpha', 'drchrono', 'patients', '{}', $2, 'running', 'elsewhere', now() + interval '1 hour', now())`, [id, randomUUID()])
  const notify = (what: string) => admin.query('SELECT pg_notify(\'bulk_gateway_jobs\', $1)', [`${what}:${id}`])
  return {
    id,
    async save (p: number, opts: { notify?: boolean, records?: string[] } = {}) {
      const records = opts.records ?? pageOf(p)
      await storePage(admin, id, p, records)
      await admin.query('UPDATE jobs SET records = records + $2 WHERE id = $1', [id, records.length])
      if (opts.notify !== false) await notify('saved')
    },
    notifySaved: () => notify('saved'),
    async end (status: 'completed' | 'failed') {
      await admin.query(`UPDATE jobs SET status = $2::"JobStatus", lease_owner = NULL, finished_at = now(),
        expires_at = now() + interval '1 hour' WHERE id = $1`, [id, status])
      await notify('ended')
    },
  }
}

/** An NDJSON follow read: its status and headers, the lines so far, and how the body ended. */
async function follow (gw: TestGateway, id: string, query = 'follow=true', key?: string) {
  const res = await gw.request(`/jobs/${id}/results?${query}`, { key, headers: { accept: 'application/x-ndjson' } })
  const lines: string[] = []
  const ended = (async (): Promise<'complete' | Error> => {
    if (res.body === null) return 'complete'
    const decoder = new TextDecoder()
    let rest = ''
    try {
      for await (const chunk of res.body) {
        rest += decoder.decode(chunk as Uint8Array, { stream: true })
        const parts = rest.split('\n')
        rest = parts.pop() as string
        lines.push(...parts)
      }
      return rest === '' ? 'complete' : new Error(`a partial line at the end: ${rest}`)
    } catch (err) {
      return err as Error
    }
  })()
  return { status: res.status, headers: res.headers, lines, ended }
}

async function setup (t: Test, env: Record<string, string> = {}, startWorkers = true) {
  const gw = await startGateway(t, { env: { WORKER_CONCURRENCY: '0', ...env }, startWorkers })
  const admin = new pg.Client({ connectionString: gw.databaseUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  if (startWorkers) await eventually(t, 'the listener is connected', () => gw.app.jobs.waits.listening)
  return { gw, admin }
}

t.test('a follow reader gets pages as they become readable, woken by notifications, and ends with the job', async t => {
  const { gw, admin } = await setup(t)
  const job = await runningJob(admin)
  const reader = await follow(gw, job.id)
  t.equal(reader.status, 200, 'the head comes at once, before any record is saved')
  t.equal(reader.headers.get('content-type'), 'application/x-ndjson')
  t.equal(reader.headers.get('x-total-count'), null, 'no total while the job runs')
  await eventually(t, 'the reader waits', () => gw.app.jobs.waits.size === 1)

  // Page 2 first (DrChrono saves pages as they arrive): nothing is readable before page 1.
  await job.save(2)
  await sleep(300)
  t.same(reader.lines, [], 'page 2 alone is held back')
  // Page 1 saved without its notification: the reader is not polling, so it does not see it.
  await job.save(1, { notify: false })
  await sleep(700)
  t.same(reader.lines, [], 'no notification, no read (the database is not polled)')
  await job.notifySaved()
  await eventually(t, 'pages 1 and 2 arrive', () => reader.lines.length === 6)
  t.same(reader.lines, [...pageOf(1), ...pageOf(2)], 'in order')

  await job.save(4)
  await job.save(3)
  await eventually(t, 'pages 3 and 4 arrive', () => reader.lines.length === 12)
  await job.save(5)
  await job.end('completed')
  t.equal(await reader.ended, 'complete', 'the body ends cleanly when the job completes')
  t.same(reader.lines, [1, 2, 3, 4, 5].flatMap(pageOf), 'every record once, in order')
  await eventually(t, 'the reader stopped waiting', () => gw.app.jobs.waits.size === 0)
})

t.test('a job that fails or is cancelled mid-stream breaks the stream off', async t => {
  const { gw, admin } = await setup(t)
  for (const how of ['failed', 'cancelled'] as const) {
    const job = await runningJob(admin)
    const reader = await follow(gw, job.id)
    await job.save(1)
    await eventually(t, `${how}: page 1 arrives`, () => reader.lines.length === 3)
    if (how === 'failed') await job.end('failed')
    else t.equal((await gw.request(`/jobs/${job.id}`, { method: 'DELETE' })).status, 202, 'cancelled by the client')
    const ended = await reader.ended
    t.type(ended, Error, `${how}: the client sees an incomplete body, not a clean end`)
    t.same(reader.lines, pageOf(1), `${how}: what was sent stays sent`)
  }
  t.ok(gw.logs.some(l => l.includes('broken off')), 'the break is logged')
  await eventually(t, 'no reader waits', () => gw.app.jobs.waits.size === 0)
})

t.test('answers that stay as they were, and follow where it does not apply', async t => {
  const { gw, admin } = await setup(t)
  const job = await runningJob(admin)
  await job.save(1)
  const json = await gw.request(`/jobs/${job.id}/results?follow=true`)
  t.match([json.status, await json.json()], [400, { code: 'validation_failed', errors: [{ in: 'query', pointer: '/follow' }] }], 'follow with JSON is refused, not ignored')
  const bad = await gw.request(`/jobs/${job.id}/results?follow=yes`, { headers: { accept: 'application/x-ndjson' } })
  t.match([bad.status, await bad.json()], [400, { errors: [{ in: 'query', pointer: '/follow' }] }], 'follow is true or false')
  const head = await gw.request(`/jobs/${job.id}/results?follow=true`, { method: 'HEAD', headers: { accept: 'application/x-ndjson' } })
  t.equal(head.status, 200, 'HEAD: the head of a follow stream')
  await eventually(t, 'HEAD leaves no reader following', () => gw.app.jobs.waits.size === 0)
  const off = await gw.request(`/jobs/${job.id}/results?follow=false`, { headers: { accept: 'application/x-ndjson' } })
  t.equal(off.status, 409, 'follow=false: a running job is not ready, as before')
  await off.body?.cancel()

  await job.end('completed')
  const done = await follow(gw, job.id, 'follow=true&partial=true')
  t.equal(await done.ended, 'complete')
  t.same([done.status, done.headers.get('x-total-count'), done.lines], [200, '3', pageOf(1)], 'a completed job: a plain NDJSON read')

  const failed = await runningJob(admin)
  await failed.save(1)
  await failed.end('failed')
  const f = await gw.request(`/jobs/${failed.id}/results?follow=true`, { headers: { accept: 'application/x-ndjson' } })
  t.match([f.status, await f.json()], [409, { code: 'results_not_ready' }], 'a failed read job: 409 as before')
  const cancelled = await runningJob(admin)
  await gw.request(`/jobs/${cancelled.id}`, { method: 'DELETE' })
  const c = await gw.request(`/jobs/${cancelled.id}/results?follow=true`, { headers: { accept: 'application/x-ndjson' } })
  t.match([c.status, await c.json()], [410, { code: 'results_expired' }], 'a cancelled job: 410 as before')
})

t.test('a follow stream takes one of the client\'s stream slots while it waits', async t => {
  const { gw, admin } = await setup(t, { MAX_RESULT_STREAMS_PER_CLIENT: '1' })
  const job = await runningJob(admin)
  const reader = await follow(gw, job.id)
  t.equal(reader.status, 200)
  const refused = await gw.request(`/jobs/${job.id}/results?follow=true`, { headers: { accept: 'application/x-ndjson' } })
  t.match([refused.status, await refused.json()], [429, { code: 'too_many_streams' }])
  const other = await follow(gw, job.id, 'follow=true', clientKeys.beta)
  t.equal(other.status, 404, 'another client\'s job stays unknown')
  await job.save(1)
  await job.end('completed')
  t.equal(await reader.ended, 'complete')
  await eventually(t, 'the slot came back', async () => {
    const res = await gw.request(`/jobs/${job.id}/results?follow=true`, { headers: { accept: 'application/x-ndjson' } })
    await res.arrayBuffer()
    return res.status === 200
  })
})

t.test('a follow reader that stops reading is cut off after RESULT_STREAM_STALL_SECONDS', async t => {
  const { gw, admin } = await setup(t, { RESULT_STREAM_STALL_SECONDS: '1' })
  const job = await runningJob(admin)
  // A raw socket that reads the head, then nothing: TCP backpressure reaches the gateway once the page is sent.
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
  t.teardown(() => socket.destroy())
  socket.on('error', () => {})
  socket.write(`GET /jobs/${job.id}/results?follow=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${clientKeys.alpha}\r\nAccept: application/x-ndjson\r\n\r\n`)
  const closed = new Promise<void>(resolve => socket.once('close', () => resolve()))
  await new Promise<void>(resolve => socket.once('data', () => { socket.pause(); resolve() }))
  // Waiting for pages is not a stall: the stream lives on past the stall period while nothing is saved.
  await sleep(1500)
  t.notOk(socket.destroyed, 'a reader waiting for the next page is not cut off')
  await job.save(1, { records: paddedRecords(32, 512 * 1024) })
  await eventually(t, 'cut off for taking nothing', () => gw.logs.some(l => l.includes('stall period')))
  // A paused socket reports its close only once what came before is read.
  socket.resume()
  await closed
  await eventually(t, 'no reader waits', () => gw.app.jobs.waits.size === 0)
})

t.test('without the listener a reader re-checks on its own, slowly', async t => {
  const { gw, admin } = await setup(t, {}, false)
  t.equal(gw.app.jobs.waits.listening, false, 'no listener (no workers started)')
  const job = await runningJob(admin)
  const reader = await follow(gw, job.id)
  await job.save(1, { notify: false })
  await eventually(t, 'page 1 arrives with no notification', () => reader.lines.length === 3, 10)
  await job.end('completed')
  t.equal(await reader.ended, 'complete')
})

t.test('a shutdown breaks follow streams off at once, not at its deadline', async t => {
  const { gw, admin } = await setup(t, { SHUTDOWN_TIMEOUT_SECONDS: '30' })
  const job = await runningJob(admin)
  const reader = await follow(gw, job.id)
  await job.save(1)
  await eventually(t, 'page 1 arrives', () => reader.lines.length === 3)
  const started = Date.now()
  await gw.app.close()
  t.ok(Date.now() - started < 15_000, `closed in ${Date.now() - started} ms`)
  t.type(await reader.ended, Error, 'the client sees an incomplete body')
})
