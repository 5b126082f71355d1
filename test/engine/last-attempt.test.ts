/**
 * JobContext.lastAttempt: false while attempts are left, true on the attempt that reaches JOB_MAX_ATTEMPTS, after
 * which an unexpected error fails the job with internal_error instead of another try.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { pino } from 'pino'
import { Worker } from '../../src/engine/worker.js'
import type { UpstreamAdapter } from '../../src/contract/adapter.js'
import { testDatabase } from '../helpers/database.js'

t.test('each attempt knows whether it is the last', async t => {
  const pool = new pg.Pool({ connectionString: await testDatabase(t) })
  t.teardown(() => pool.end())
  const id = randomUUID()
  await pool.query('INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash) VALUES ($1, \'alpha\', \'drchrono\', \'patients\', \'{}\', $2)', [id, randomUUID()])
  const seen: boolean[] = []
  const adapter = {
    run: async (ctx: { lastAttempt: boolean }) => {
      seen.push(ctx.lastAttempt)
      throw new Error('the database went away')
    },
  } as unknown as UpstreamAdapter
  const worker = new Worker(pool, () => adapter, { concurrency: 1, leaseSeconds: 30, pollSeconds: 0.1, maxAttempts: 2, ttlSeconds: 3600, shutdownTimeoutMs: 1000 }, pino({ level: 'silent' }))
  worker.start()
  t.teardown(() => worker.stop())
  const row = async () => (await pool.query('SELECT status, error_code, attempts FROM jobs WHERE id = $1', [id])).rows[0]
  for (let i = 0; i < 100 && (await row()).status !== 'failed'; i++) {
    // The retry waits out its backoff (about a second): bring it forward.
    await pool.query('UPDATE jobs SET run_after = now() WHERE id = $1 AND status = \'queued\'', [id])
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.match(await row(), { status: 'failed', error_code: 'internal_error', attempts: 2 })
  t.same(seen, [false, true], 'the first attempt had one left; the second was the last')
})
