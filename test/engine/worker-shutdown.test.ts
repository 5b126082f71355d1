/**
 * A job claimed while the worker is stopping: the claim's UPDATE has committed (the job reads running, leased to
 * this worker) but its answer reaches the worker after stop() aborted the jobs it knew of. It must be handed back
 * for another replica at once, as the running ones are, not run on until the process exits holding its lease.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { pino } from 'pino'
import { Worker } from '../../src/engine/worker.js'
import type { UpstreamAdapter } from '../../src/contract/adapter.js'
import { testDatabase } from '../helpers/database.js'

t.test('a claim answered after stop() began is released, and its adapter never runs', async t => {
  const pool = new pg.Pool({ connectionString: await testDatabase(t) })
  t.teardown(() => pool.end())
  const id = randomUUID()
  await pool.query('INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash) VALUES ($1, \'alpha\', \'drchrono\', \'patients\', \'{}\', $2)', [id, randomUUID()])

  // The claim goes to PostgreSQL and commits; its answer is held until the test lets it through.
  let claimed!: () => void
  const committed = new Promise<void>(resolve => { claimed = resolve })
  let letThrough!: () => void
  const gate = new Promise<void>(resolve => { letThrough = resolve })
  const slow = new Proxy(pool, {
    get (target, prop) {
      if (prop !== 'query') return Reflect.get(target, prop)
      return async (...args: Parameters<pg.Pool['query']>) => {
        const result = await (target.query as (...a: unknown[]) => Promise<unknown>)(...args)
        const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string }).text ?? ''
        if (/SET status = 'running', lease_owner/.test(text) && (result as pg.QueryResult).rowCount === 1) {
          claimed()
          await gate
        }
        return result
      }
    },
  })
  let runs = 0
  const adapter = { run: async () => { runs++ } } as unknown as UpstreamAdapter
  const worker = new Worker(slow, () => adapter, { concurrency: 1, leaseSeconds: 30, pollSeconds: 0.2, maxAttempts: 5, ttlSeconds: 3600, shutdownTimeoutMs: 5000 }, pino({ level: 'silent' }))
  worker.start()
  await committed
  const row = async () => (await pool.query('SELECT status, lease_owner, attempts FROM jobs WHERE id = $1', [id])).rows[0]
  t.match(await row(), { status: 'running', attempts: 1 }, 'claimed in the database')
  const stopped = worker.stop()
  letThrough()
  await stopped
  t.same(await row(), { status: 'queued', lease_owner: null, attempts: 0 }, 'released at once, the attempt not counted')
  t.equal(runs, 0, 'the adapter never ran')
})
