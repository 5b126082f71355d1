/**
 * An early delivery (kept because no job was parked under its key yet) finishes only a job whose upstream run it
 * can belong to: one received before the job first started answers some earlier run that reused the key (or a
 * guessed one), and is left alone.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { claimNextJob, parkJob } from '../../src/db/sql/jobs.js'
import { deliverWebhook } from '../../src/db/sql/webhooks.js'
import { testDatabase } from '../helpers/database.js'
import { storedRecords } from '../helpers/stored-results.js'

const upstream = 'metriport'

t.test('early deliveries and the run they belong to', async t => {
  const pool = new pg.Pool({ connectionString: await testDatabase(t) })
  t.teardown(() => pool.end())
  const insertJob = async () => {
    const id = randomUUID()
    await pool.query('INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash) VALUES ($1, \'alpha\', $2, \'document-download-urls\', \'{}\', $3)', [id, upstream, randomUUID()])
    return id
  }
  const claim = async () => {
    const claimed = await claimNextJob(pool, 'w1', 30)
    if (claimed === null) throw new Error('nothing to claim')
    return claimed.id
  }
  const park = async (id: string, key: string) => {
    if (!(await parkJob(pool, { jobId: id, workerId: 'w1', upstream, key, timeoutSeconds: 60, ttlSeconds: 3600 })).held) throw new Error('the job did not park')
  }
  const job = async (id: string) => (await pool.query('SELECT status, records, waiting_for FROM jobs WHERE id = $1', [id])).rows[0]
  const deliver = (messageId: string, key: string, records: string[]) => deliverWebhook(pool, {
    upstream,
    messageId,
    key,
    outcome: { records },
    ttlSeconds: 3600,
  })
  /** What a delivery did: the status, with the jobs it finished when it finished any. */
  const delivered = async (messageId: string, key: string, records: string[]) => {
    const result = await deliver(messageId, key, records)
    return result.status === 'applied' ? { status: result.status, jobIds: result.jobIds } : result
  }

  t.test('a delivery received before the job started is not its run\'s: the job keeps waiting', async t => {
    t.same(await deliver('m-old', 'run-1', ['{"id":"stale"}']), { status: 'stored' }, 'nobody waits for run-1 yet')
    await insertJob()
    const id = await claim()
    await park(id, 'run-1')
    t.match(await job(id), { status: 'running', records: 0, waiting_for: 'run-1' }, 'the stored delivery did not finish it')
    t.same(await delivered('m-new', 'run-1', ['{"id":"fresh"}']), { status: 'applied', jobIds: [id] }, 'its own run\'s delivery does')
    t.same(await storedRecords(pool, id), ['{"id":"fresh"}'])
  })

  t.test('a delivery received after the job started and before it parked is applied when it parks', async t => {
    await insertJob()
    const id = await claim()
    t.same(await deliver('m-early', 'run-2', ['{"id":"early"}']), { status: 'stored' })
    await park(id, 'run-2')
    t.match(await job(id), { status: 'completed', records: 1, waiting_for: null })
  })

  t.test('two jobs that joined one run both take its delivery, even the one that parks after it came', async t => {
    await insertJob()
    const first = await claim()
    await insertJob()
    const second = await claim()
    await park(first, 'run-3')
    t.same(await delivered('m-shared', 'run-3', ['{"id":"shared"}']), { status: 'applied', jobIds: [first] })
    await park(second, 'run-3')
    t.match(await job(second), { status: 'completed', records: 1 }, 'started before the delivery came: it is its run\'s answer too')
  })
})
