/**
 * `GET /jobs/{id}/results?partial=true` while a job runs: the records saved so far, in order, never past a page that
 * is saved later (pages may be saved out of order); `"complete": false` and a cursor to ask again with; and the
 * same cursors going on once the job has ended, to exactly the job's records.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { storePage } from '../helpers/stored-results.js'

const pageOf = (p: number): string[] => Array.from({ length: 3 }, (_, i) => `{"page":${p},"i":${i}}`)

interface Page { data: unknown[], nextCursor: string | null, total: number, complete?: boolean }

async function read (gw: TestGateway, id: string, query: string): Promise<{ status: number, body: Page, text: string }> {
  const res = await gw.request(`/jobs/${id}/results?${query}`)
  const text = await res.text()
  return { status: res.status, body: JSON.parse(text) as Page, text }
}

t.test('a partial pager reads what is final, then walks to the end of the completed job', async t => {
  const gw = await startGateway(t, { startWorkers: false })
  const admin = new pg.Client({ connectionString: gw.databaseUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  const id = randomUUID()
  await admin.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, lease_owner, started_at)
    VALUES ($1, 'alpha', 'drchrono', 'patients', '{}', $2, 'running', 'w1', now())`, [id, randomUUID()])
  const save = async (p: number): Promise<void> => {
    await storePage(admin, id, p, pageOf(p))
    await admin.query('UPDATE jobs SET records = records + 3 WHERE id = $1', [id])
  }

  t.equal((await read(gw, id, 'limit=2')).status, 409, 'without partial=true a running job stays 409')
  // Page 2 arrives before page 1: nothing is final until page 1 is saved.
  await save(2)
  const none = await read(gw, id, 'limit=2&partial=true')
  t.same([none.status, none.body.data, none.body.complete, none.body.total], [200, [], false, 3], 'page 2 alone: no records, not complete')
  t.type(none.body.nextCursor, 'string', 'and a cursor to ask again with')

  // Pages 1 and 4 follow; 3 comes later (DrChrono saves pages as they arrive).
  for (const p of [1, 4]) await save(p)
  const seen: unknown[] = []
  let cursor = none.body.nextCursor as string
  for (let i = 0; i < 10; i++) {
    const got = await read(gw, id, `limit=2&partial=true&cursor=${cursor}`)
    t.equal(got.body.complete, false)
    seen.push(...got.body.data)
    cursor = got.body.nextCursor as string
    t.type(cursor, 'string', 'never a null cursor while the job runs')
    if (got.body.data.length === 0) break
  }
  t.same(seen, [...pageOf(1), ...pageOf(2)].map(r => JSON.parse(r)), 'pages 1 and 2; page 4 waits behind the gap')

  await save(3)
  await admin.query('UPDATE jobs SET status = \'completed\', lease_owner = NULL, finished_at = now(), expires_at = now() + interval \'1 hour\' WHERE id = $1', [id])
  let last: Page | undefined
  for (let i = 0; i < 10 && cursor !== null; i++) {
    const got = await read(gw, id, `limit=2&partial=true&cursor=${cursor}`)
    t.equal(got.status, 200)
    seen.push(...got.body.data)
    last = got.body
    cursor = got.body.nextCursor as string
  }
  t.same(seen, [1, 2, 3, 4].flatMap(pageOf).map(r => JSON.parse(r)), 'after completion the same cursor goes on: every record once, in order')
  t.same([last?.complete, last?.nextCursor, last?.total], [true, null, 12], 'the last page says the job is complete')

  const whole = await read(gw, id, 'limit=100')
  t.equal(whole.text, `{"data":[${[1, 2, 3, 4].flatMap(pageOf).join(',')}],"nextCursor":null,"total":12}`, 'without partial=true the envelope is as before')
  const flagged = await read(gw, id, 'limit=100&partial=true')
  t.equal(flagged.text, `{"data":[${[1, 2, 3, 4].flatMap(pageOf).join(',')}],"nextCursor":null,"total":12,"complete":true}`)
})

t.test('partial=true does not open what stays closed', async t => {
  const gw = await startGateway(t, { startWorkers: false })
  const admin = new pg.Client({ connectionString: gw.databaseUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  const job = async (status: string): Promise<string> => {
    const id = randomUUID()
    await admin.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records)
      VALUES ($1, 'alpha', 'drchrono', 'patients', '{}', $2, $3::"JobStatus", 3)`, [id, randomUUID(), status])
    await storePage(admin, id, 1, pageOf(1))
    return id
  }
  const failed = await job('failed')
  t.match((await read(gw, failed, 'partial=true')).body, { code: 'results_not_ready' }, 'a failed read job\'s records are never served')
  const cancelled = await job('cancelled')
  t.equal((await read(gw, cancelled, 'partial=true')).status, 410)
  const running = await job('running')
  const ndjson = await gw.request(`/jobs/${running}/results?partial=true`, { headers: { accept: 'application/x-ndjson' } })
  t.equal(ndjson.status, 409, 'NDJSON of a running job stays 409 (partial is for cursor pages)')
  await ndjson.body?.cancel()
  const bad = await read(gw, running, 'partial=yes')
  t.match([bad.status, bad.body], [400, { errors: [{ in: 'query', pointer: '/partial' }] }], 'partial is true or false')
})
