/**
 * Why a running job's writes are refused, as the adapter sees it: a job cancelled in the database aborts as a
 * cancel (JobCancelledError) even before the cancel's notification reaches the worker; a job taken by another worker
 * aborts as a lost lease. An adapter that cleans up after a cancel (FHIR DELETEs its export) relies on the difference.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { pino } from 'pino'
import { Worker } from '../../src/engine/worker.js'
import { JobCancelledError, LeaseLostError } from '../../src/domain/errors.js'
import type { JobContext, UpstreamAdapter } from '../../src/contract/adapter.js'
import { testDatabase } from '../helpers/database.js'

t.test('a refused write or lease renewal says whether the job was cancelled', async t => {
  const pool = new pg.Pool({ connectionString: await testDatabase(t) })
  t.teardown(() => pool.end())

  /** Runs one job whose adapter hands its context to `body`; resolves with what `body` returned. */
  const runOne = async <T>(body: (ctx: JobContext, id: string) => Promise<T>): Promise<T> => {
    const id = randomUUID()
    await pool.query('INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash) VALUES ($1, \'alpha\', \'drchrono\', \'patients\', \'{}\', $2)', [id, randomUUID()])
    let result!: Promise<T>
    let worker!: Worker
    const ran = new Promise<void>(resolve => {
      const adapter = {
        run: async (ctx: JobContext) => {
          if (ctx.jobId !== id) throw new Error(`the worker ran job ${ctx.jobId}, not this subtest's ${id}`)
          result = body(ctx, id)
          resolve()
          await result.catch(() => {})
          throw ctx.signal.reason ?? new Error('the body ended without an abort')
        },
      } as unknown as UpstreamAdapter
      // A lease of 1.2 s: the heartbeat beats every 400 ms.
      worker = new Worker(pool, () => adapter, { concurrency: 1, leaseSeconds: 1.2, pollSeconds: 0.1, maxAttempts: 3, ttlSeconds: 3600, shutdownTimeoutMs: 1000 }, pino({ level: 'silent' }))
      worker.start()
    })
    try {
      await ran
      return await result
    } finally {
      // Before the next job is queued: no worker of an earlier subtest may claim it.
      await worker.stop()
    }
  }
  // What the job service's cancel writes, without its notification to the worker.
  const cancelInDatabase = (id: string) => pool.query('UPDATE jobs SET status = \'cancelled\', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL WHERE id = $1', [id])

  t.test('a checkpoint refused because the job was cancelled aborts the run as a cancel', async t => {
    const { err, reason } = await runOne(async (ctx, id) => {
      await cancelInDatabase(id)
      const err = await ctx.saveCheckpoint({ statusUrl: 'x' }).then(() => null, (e: unknown) => e)
      return { err, reason: ctx.signal.reason as unknown }
    })
    t.type(err, JobCancelledError, 'the write throws the cancel')
    t.type(reason, JobCancelledError, 'and the signal carries it')
  })

  t.test('a checkpoint refused because another worker holds the job aborts as a lost lease', async t => {
    const { err, reason } = await runOne(async (ctx, id) => {
      await pool.query('UPDATE jobs SET lease_owner = \'another worker\' WHERE id = $1', [id])
      const err = await ctx.saveCheckpoint({}).then(() => null, (e: unknown) => e)
      return { err, reason: ctx.signal.reason as unknown }
    })
    t.type(err, LeaseLostError)
    t.type(reason, LeaseLostError)
    // Ended, so that no later subtest's worker takes it once its lease has run out.
    await pool.query('UPDATE jobs SET status = \'failed\', lease_owner = NULL, lease_expires_at = NULL WHERE status = \'running\'')
  })

  t.test('a page refused because the job was cancelled stores nothing and aborts as a cancel', async t => {
    const { err, id } = await runOne(async (ctx, id) => {
      await cancelInDatabase(id)
      return { err: await ctx.savePage(1, ['{"a":1}'], {}).then(() => null, (e: unknown) => e), id }
    })
    t.type(err, JobCancelledError)
    t.equal((await pool.query('SELECT count(*)::int AS n FROM result_pages WHERE job_id = $1', [id])).rows[0].n, 0)
  })

  t.test('the heartbeat finds the job cancelled: the run aborts as a cancel', async t => {
    const reason = await runOne(async (ctx, id) => {
      await cancelInDatabase(id)
      await new Promise<void>(resolve => ctx.signal.addEventListener('abort', () => resolve(), { once: true }))
      return ctx.signal.reason as unknown
    })
    t.type(reason, JobCancelledError)
  })
})
