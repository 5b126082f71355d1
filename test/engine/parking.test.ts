/**
 * Webhook-completed jobs at the engine level: a parked job is finished by its delivery (once, however often it is
 * delivered), a delivery that comes before the park is kept and applied when the job parks, and a job whose
 * webhook never comes fails with upstream_timeout. However the job ends, its end is counted once (job-endings.ts).
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { pino } from 'pino'
import { claimNextJob } from '../../src/db/sql/jobs.js'
import type { DeliveryOutcome } from '../../src/db/sql/webhooks.js'
import { JobEndings } from '../../src/engine/job-endings.js'
import { Worker } from '../../src/engine/worker.js'
import { noObserve, type Observe } from '../../src/metrics/observe.js'
import { testDatabase } from '../helpers/database.js'
import { storedRecords } from '../helpers/stored-results.js'

const upstream = 'metriport'

t.test('parking and webhook deliveries', async t => {
  const pool = new pg.Pool({ connectionString: await testDatabase(t) })
  t.teardown(() => pool.end())
  // What the endings report, as the metrics would count it.
  const reported: string[] = []
  const observe: Observe = {
    ...noObserve,
    jobFinished: e => reported.push(`${e.outcome}${e.code === undefined ? '' : ` ${e.code}`}`),
    recordsStored: (_upstream, n) => reported.push(`stored ${n}`),
  }
  const endings = new JobEndings(pool, 3600, observe)
  const deliver = (messageId: string, key: string, outcome: DeliveryOutcome) => endings.delivered({ upstream, messageId, key, outcome })
  const insertJob = async () => {
    const id = randomUUID()
    await pool.query('INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash) VALUES ($1, \'alpha\', $2, \'document-download-urls\', \'{}\', $3)', [id, upstream, randomUUID()])
    return id
  }
  const job = async (id: string) => (await pool.query('SELECT status, records, waiting_for, lease_owner, error_code, expires_at FROM jobs WHERE id = $1', [id])).rows[0]
  const records = async (id: string) => await storedRecords(pool, id)
  const park = async (key: string, timeoutSeconds = 60) => {
    const claimed = await claimNextJob(pool, 'w1', 30)
    if (claimed === null) throw new Error('nothing to claim')
    t.same(await endings.parked(claimed, 'w1', { key, timeoutSeconds }), { held: true })
    return claimed.id
  }

  t.test('a delivery finishes the job parked under its key, once', async t => {
    await insertJob()
    const id = await park('req-1')
    t.match(await job(id), { status: 'running', waiting_for: 'req-1', lease_owner: null })
    t.equal(await claimNextJob(pool, 'w2', 30), null, 'a parked job is not claimable before its deadline')
    const outcome = { records: ['{"id":"d1","patientId":"p"}', '{"id":"d2","patientId":"p"}'] }
    reported.length = 0
    const applied = await deliver('m-1', 'req-1', outcome)
    t.same(applied.status === 'applied' && applied.jobIds, [id])
    t.same(applied.status === 'applied' && applied.finished.map(({ startedAt, ...f }) => f), [{ id, upstream, outcome: 'completed', code: null, records: 2 }])
    t.match(await job(id), { status: 'completed', records: 2, waiting_for: null })
    t.same(await records(id), outcome.records)
    t.same(await deliver('m-1', 'req-1', outcome), { status: 'duplicate' })
    t.same(await records(id), outcome.records, 'a duplicate delivery stores nothing')
    t.same(reported, ['completed', 'stored 2'], 'the end is counted once, with its records')
  })

  t.test('a delivery that arrives before the park is applied when the job parks', async t => {
    await insertJob()
    const claimed = await claimNextJob(pool, 'w1', 30)
    if (claimed === null) throw new Error('nothing to claim')
    // The job has started its upstream run (test/engine/early-delivery.test.ts: a delivery older than that is not its run's).
    t.same(await deliver('m-2', 'req-2', { records: ['{"id":"early"}'] }), { status: 'stored' })
    reported.length = 0
    t.same(await endings.parked(claimed, 'w1', { key: 'req-2', timeoutSeconds: 60 }), { held: true })
    const id = claimed.id
    t.match(await job(id), { status: 'completed', records: 1 })
    t.same(await records(id), ['{"id":"early"}'])
    t.same(reported, ['completed', 'stored 1'], 'a job the early delivery finished as it parked is counted as it ends')
  })

  t.test('an error outcome fails the job with its code', async t => {
    await insertJob()
    const id = await park('req-3')
    reported.length = 0
    await deliver('m-3', 'req-3', { error: { code: 'upstream_failed', message: 'the patient\'s documents could not be prepared' } })
    t.match(await job(id), { status: 'failed', error_code: 'upstream_failed', records: 0 })
    t.same(reported, ['failed upstream_failed'])
  })

  t.test('no webhook before the deadline: a worker fails the job with upstream_timeout', async t => {
    await insertJob()
    const id = await park('req-4', 1)
    reported.length = 0
    const worker = new Worker(pool, () => undefined, { concurrency: 1, leaseSeconds: 30, pollSeconds: 0.2, maxAttempts: 5, ttlSeconds: 3600, shutdownTimeoutMs: 1000 }, pino({ level: 'silent' }), observe)
    worker.start()
    t.teardown(() => worker.stop())
    for (let i = 0; i < 100 && (await job(id)).status === 'running'; i++) await new Promise(resolve => setTimeout(resolve, 100))
    t.match(await job(id), { status: 'failed', error_code: 'upstream_timeout', waiting_for: null })
    t.same(reported, ['failed upstream_timeout'])
    t.same(await deliver('m-4', 'req-4', { records: ['{}'] }), { status: 'stored' }, 'a late delivery finds no job')
  })
})
