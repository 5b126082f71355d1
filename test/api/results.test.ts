/**
 * GET /jobs/{id}/results on rows written straight into the database: the exact bytes of cursor pages and of the
 * NDJSON stream (multi-byte UTF-8, int64, pretty-printed records), and the pool after clients that go away and
 * connections that are lost mid-read.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { request as undiciRequest } from 'undici'
import { clientKeys, startGateway } from '../helpers/gateway.js'
import { paddedRecords, storePages } from '../helpers/stored-results.js'

const records = [
  '{"id":1,"name":"Zoë Ångström","city":"東京","emoji":"🩺"}',
  '{"id":9007199254740993,"amount":1.10,"note":"int64 and 1.10 stay as written"}',
  '{"escaped":"line\\nbreak \\"quoted\\" \\\\ \\u00e9"}',
  '{\n  "pretty": true,\r\n  "nested": {"a": [1, 2]}\n}',
  ...Array.from({ length: 2496 }, (_, i) => `{"n":${i},"pad":"${'é'.repeat(i % 50)}"}`),
]
const folded = (r: string): string => r.replace(/[\r\n]/g, ' ')
const page = (rs: string[], nextCursor: string | null, total: number): string =>
  `{"data":[${rs.join(',')}],"nextCursor":${JSON.stringify(nextCursor)},"total":${total}}`

t.test('results', async t => {
  const gw = await startGateway(t, { startWorkers: false })
  const pool = gw.app.db.pool
  const admin = new pg.Client({ connectionString: gw.databaseUrl })
  await admin.connect()
  t.teardown(() => admin.end())

  const insertJob = async (rs: string[] | { count: number, bytes: number }, perPage = 1000): Promise<string> => {
    const id = randomUUID()
    const count = Array.isArray(rs) ? rs.length : rs.count
    await admin.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records, finished_at, expires_at)
      VALUES ($1, 'alpha', 'drchrono', 'patients', '{}', $2, 'completed', $3, now(), now() + interval '1 hour')`, [id, randomUUID(), count])
    await storePages(admin, id, Array.isArray(rs) ? rs : paddedRecords(rs.count, rs.bytes), perPage)
    return id
  }
  const settled = async (): Promise<void> => {
    for (let i = 0; i < 250 && pool.idleCount !== pool.totalCount; i++) await new Promise(resolve => setTimeout(resolve, 20))
  }
  const jobId = await insertJob(records)

  t.test('cursor pages: the envelope around the records\' exact bytes', async t => {
    const first = await gw.request(`/jobs/${jobId}/results?limit=3`)
    t.equal(first.status, 200)
    t.equal(first.headers.get('content-type'), 'application/json; charset=utf-8')
    const text = await first.text()
    const cursor = JSON.parse(text).nextCursor as string
    t.equal(text, page(records.slice(0, 3), cursor, records.length))
    t.equal(Number(first.headers.get('content-length')), Buffer.byteLength(text))

    const second = await (await gw.request(`/jobs/${jobId}/results?limit=1&cursor=${cursor}`)).text()
    t.equal(second, page([records[3] as string], JSON.parse(second).nextCursor, records.length), 'a pretty-printed record is served as stored')

    let after: string | null = null
    const seen: string[] = []
    let pages = 0
    do {
      const res = await gw.request(`/jobs/${jobId}/results?limit=999${after === null ? '' : `&cursor=${after}`}`)
      const body = await res.text()
      const parsed = JSON.parse(body) as { data: unknown[], nextCursor: string | null }
      const expected = records.slice(seen.length, seen.length + parsed.data.length)
      t.equal(body, page(expected, parsed.nextCursor, records.length), `page ${pages + 1} byte for byte`)
      seen.push(...expected)
      after = parsed.nextCursor
      pages++
    } while (after !== null && pages < 10)
    t.equal(seen.length, records.length)
    t.equal(pages, 3, 'pages of 999 cross the stored pages of 1000; the last one has no cursor')
  })

  t.test('a job with no records: an empty page', async t => {
    const empty = await insertJob([])
    t.equal(await (await gw.request(`/jobs/${empty}/results`)).text(), '{"data":[],"nextCursor":null,"total":0}')
    const ndjson = await gw.request(`/jobs/${empty}/results`, { headers: { accept: 'application/x-ndjson' } })
    t.equal(ndjson.status, 200)
    t.equal(await ndjson.text(), '')
  })

  t.test('a page that ends exactly at the last record has no cursor', async t => {
    const res = await gw.request(`/jobs/${jobId}/results?limit=1000&cursor=${Buffer.from(JSON.stringify([2, 499])).toString('base64url')}`)
    t.equal(await res.text(), page(records.slice(1500), null, records.length))
  })

  t.test('cursors this API never gave out are a 400 invalid_cursor, whatever their numbers', async t => {
    for (const value of [[2, 2_147_483_647], [2_147_483_648, 0], [-1, 0], [1.5, 0], [1], 'x']) {
      const res = await gw.request(`/jobs/${jobId}/results?cursor=${Buffer.from(JSON.stringify(value)).toString('base64url')}`)
      t.equal(res.status, 400, JSON.stringify(value))
      t.match(await res.json(), { code: 'invalid_cursor', errors: [{ in: 'query', pointer: '/cursor' }] })
    }
    const last = await gw.request(`/jobs/${jobId}/results?cursor=${Buffer.from(JSON.stringify([2_147_483_647, 2_147_483_646])).toString('base64url')}`)
    t.same((await last.json()).data, [], 'the largest cursor that could be given out reads nothing after it')
  })

  t.test('NDJSON: every record\'s bytes on a line of its own, line breaks inside records folded', async t => {
    const res = await gw.request(`/jobs/${jobId}/results`, { headers: { accept: 'application/x-ndjson' } })
    t.equal(res.status, 200)
    t.match(res.headers.get('content-type'), /^application\/x-ndjson/)
    t.equal(res.headers.get('x-total-count'), String(records.length))
    const body = Buffer.from(await res.arrayBuffer())
    t.ok(body.equals(Buffer.from(records.map(folded).join('\n') + '\n')), 'byte for byte')
    const lines = body.toString('utf8').split('\n')
    t.equal(lines.pop(), '')
    t.same(lines.map(l => JSON.parse(l)), records.map(r => JSON.parse(r)))
  })

  t.test('a client that leaves mid-stream leaves no connection checked out, and the gateway serves on', async t => {
    const big = await insertJob({ count: 20_000, bytes: 1000 })
    for (let round = 0; round < 3; round++) {
      const res = await undiciRequest(`${gw.url}/jobs/${big}/results`, { headers: { authorization: `Bearer ${clientKeys.alpha}`, accept: 'application/x-ndjson' } })
      t.equal(res.statusCode, 200)
      // eslint-disable-next-line no-unreachable-loop -- one chunk, then leave: that is the client under test
      for await (const chunk of res.body) {
        t.ok((chunk as Buffer).length > 0)
        break // leaving the loop destroys the body: the connection closes while the gateway still has batches to send
      }
    }
    await settled()
    t.equal(pool.totalCount - pool.idleCount, 0, 'every connection went back to the pool')
    const whole = await undiciRequest(`${gw.url}/jobs/${big}/results`, { headers: { authorization: `Bearer ${clientKeys.alpha}`, accept: 'application/x-ndjson' } })
    let lines = 0
    for await (const chunk of whole.body) for (let i = (chunk as Buffer).indexOf(10); i !== -1; i = (chunk as Buffer).indexOf(10, i + 1)) lines++
    t.equal(lines, 20_000, 'the next stream is whole')
  })

  t.test('a database connection lost mid-read: 500 problem for a page, the pool replaces it', async t => {
    await admin.query('BEGIN')
    await admin.query('LOCK TABLE result_pages IN ACCESS EXCLUSIVE MODE')
    const pending = gw.request(`/jobs/${jobId}/results?limit=10`)
    const ndjsonPending = gw.request(`/jobs/${jobId}/results`, { headers: { accept: 'application/x-ndjson' } })
    let killed = 0
    for (let i = 0; i < 250 && killed < 2; i++) {
      const { rows } = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_locks
        WHERE relation = 'result_pages'::regclass AND NOT granted`)
      killed += rows.length
      if (killed < 2) await new Promise(resolve => setTimeout(resolve, 20))
    }
    await admin.query('ROLLBACK')
    t.equal(killed, 2, 'both COPYs were waiting on the lock and were terminated')
    const res = await pending
    t.equal(res.status, 500)
    t.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8')
    const ndjson = await ndjsonPending
    t.equal(ndjson.status, 500, 'NDJSON fails before its first byte: a problem, not a cut stream')
    await settled()
    t.equal(pool.totalCount - pool.idleCount, 0)
    const after = await (await gw.request(`/jobs/${jobId}/results?limit=2`)).text()
    t.equal(after, page(records.slice(0, 2), JSON.parse(after).nextCursor, records.length), 'the next read works')
    t.equal((await gw.request('/health/ready')).status, 200, 'the process is alive and ready')
  })
})
