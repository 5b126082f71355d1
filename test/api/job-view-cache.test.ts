/**
 * GET /jobs/{id} serves finished jobs' views from a per-process cache. Two gateways (replicas) on one database:
 * the cache answers only the owning client, honours expiresAt (the job then reads expired) without the sweeper,
 * and a DELETE on either replica reaches the other's cache. To tell a cached answer from a fresh one, the tests
 * change a row behind the gateways' backs, which no code path does.
 */
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { testDatabase } from '../helpers/database.js'
import { clientKeys, startGateway, type TestGateway } from '../helpers/gateway.js'

t.test('cache of finished jobs\' views across two replicas', async t => {
  const databaseUrl = await testDatabase(t)
  // No sweep during the tests (the first runs at start, before any job exists), unless a DELETE wakes it.
  const env = { SWEEP_INTERVAL_SECONDS: '3600' }
  const a = await startGateway(t, { databaseUrl, env })
  const b = await startGateway(t, { databaseUrl, env })
  const pool = new pg.Pool({ connectionString: databaseUrl })
  t.teardown(() => pool.end())

  const insertJob = async (status: string, expiresInMs: number | null, records = 10): Promise<string> => {
    const id = randomUUID()
    await pool.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records, pages_done, pages_total,
        attempts, created_at, started_at, finished_at, expires_at)
      VALUES ($1, 'alpha', 'drchrono', 'appointments', '{"since":"2024-01-01"}', $2, $3, $4, 1, 1, 1, now(), now(), now(),
        CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $5::float8 / 1000) END)`,
    [id, randomUUID(), status, records, expiresInMs])
    return id
  }
  const setRecords = (id: string, records: number) => pool.query('UPDATE jobs SET records = $2 WHERE id = $1', [id, records])
  const read = async (gw: TestGateway, id: string, key = clientKeys.alpha) => {
    const res = await gw.request(`/jobs/${id}`, { key })
    return { status: res.status, headers: res.headers, text: await res.text() }
  }
  const cached = (gw: TestGateway, id: string) => gw.app.jobs.views.get('alpha', id) !== undefined
  /** The listener connects once the server listens: read until this replica caches. */
  const readUntilCached = async (gw: TestGateway, id: string) => {
    const deadline = Date.now() + 10_000
    while (!cached(gw, id)) {
      if (Date.now() > deadline) throw new Error('the view was never cached')
      await read(gw, id)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }
  const until = async (what: string, check: () => Promise<boolean>) => {
    const deadline = Date.now() + 10_000
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`${what}: not within 10 s`)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }

  t.test('a finished job is cached for its owner only, per process, as the database would answer', async t => {
    const id = await insertJob('completed', 3_600_000)
    const fresh = await read(a, id)
    await readUntilCached(a, id)
    const hit = await read(a, id)
    t.equal(hit.status, 200)
    t.equal(hit.text, fresh.text, 'the cached answer is the uncached one, byte for byte')
    t.equal(hit.headers.get('content-type'), 'application/json; charset=utf-8')
    t.equal(hit.headers.get('retry-after'), null)
    t.match(JSON.parse(hit.text), { id, status: 'completed', progress: { records: 10, percent: 100 } })

    await setRecords(id, 11)
    t.equal(JSON.parse((await read(a, id)).text).progress.records, 10, 'replica A answers from its cache')
    t.equal(JSON.parse((await read(a, id.toUpperCase())).text).progress.records, 10, 'whatever the case of the id')
    t.equal(JSON.parse((await read(b, id)).text).progress.records, 11, 'replica B has its own cache')

    const other = await read(a, id, clientKeys.beta)
    t.equal(other.status, 404, 'another client gets 404, cached or not')
    t.equal(other.headers.get('content-type'), 'application/problem+json; charset=utf-8')

    const running = await insertJob('running', null)
    await read(a, running)
    await read(a, running)
    t.notOk(cached(a, running), 'a running job is never cached')
  })

  t.test('a completed job past expiresAt is read from the database again, sweeper or not', async t => {
    const id = await insertJob('completed', 1500)
    await readUntilCached(a, id)
    await setRecords(id, 12)
    t.equal(JSON.parse((await read(a, id)).text).progress.records, 10, 'cached before expiresAt')
    const { rows: [row] } = await pool.query('SELECT expires_at FROM jobs WHERE id = $1', [id])
    await new Promise(resolve => setTimeout(resolve, Math.max(0, (row.expires_at as Date).getTime() - Date.now() + 50)))
    const after = JSON.parse((await read(a, id)).text)
    t.match(after, { status: 'expired', progress: { records: 12 } }, 'the answer is the database\'s: expired at once, as without a cache')
    const { rows: [now] } = await pool.query('SELECT status FROM jobs WHERE id = $1', [id])
    t.equal(now.status, 'completed', 'though no sweep has marked the row')
    t.notOk(cached(a, id), 'and a job past expiresAt is not cached again')
  })

  t.test('a sweep that expires a job reaches every replica\'s cache, whatever their clocks say', async t => {
    const id = await insertJob('completed', 3_600_000)
    await readUntilCached(a, id)
    // As if the database's clock jumped an hour ahead after A read the job: the row is past expiry, while A's
    // entry counts the hour the database gave it at the read.
    await pool.query("UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = $1", [id])
    t.equal(JSON.parse((await read(a, id)).text).status, 'completed', 'cached, for the hour A was told')
    t.ok((await b.app.sweeper.sweep()).expired >= 1, 'replica B\'s sweep expires it (and the job of the test before)')
    await until('replica A sees the job expired', async () => JSON.parse((await read(a, id)).text).status === 'expired')
    t.pass('replica A answers expired after the sweep\'s notification')
  })

  t.test('a DELETE on one replica reaches the other replica\'s cache', async t => {
    const id = await insertJob('completed', 3_600_000)
    await readUntilCached(a, id)
    await readUntilCached(b, id)
    const deleted = await b.request(`/jobs/${id}`, { method: 'DELETE' })
    t.equal(deleted.status, 202)
    t.equal((await deleted.json()).status, 'expired')
    t.equal(JSON.parse((await read(b, id)).text).status, 'expired', 'the replica that expired it answers expired at once')
    await until('replica A sees the job expired', async () => JSON.parse((await read(a, id)).text).status === 'expired')
    t.pass('replica A answers expired after the notification')
    t.equal((await a.request(`/jobs/${id}/results`)).status, 410)

    const mine = await insertJob('completed', 3_600_000)
    await readUntilCached(a, mine)
    t.equal((await a.request(`/jobs/${mine}`, { method: 'DELETE' })).status, 202)
    t.equal(JSON.parse((await read(a, mine)).text).status, 'expired', 'a DELETE on the same replica drops its entry at once')

    const failed = await insertJob('failed', 3_600_000)
    await readUntilCached(a, failed)
    const before = (await read(a, failed)).text
    t.equal((await b.request(`/jobs/${failed}`, { method: 'DELETE' })).status, 202)
    t.equal((await read(a, failed)).text, before, 'a DELETE leaves a failed job as it was')
  })
})
