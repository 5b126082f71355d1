/**
 * Storing a page of records: binary COPY keeps every record byte for byte (multi-byte UTF-8, escapes, int64
 * numbers, empty objects, a 1 MB record), a replayed page adds nothing, and a write without the job's lease is
 * refused without storing anything.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { copyRows, insertRecords, savePage } from '../../src/db/sql/results.js'
import { LeaseLostError } from '../../src/domain/errors.js'
import { transaction } from '../../src/db/sql/sql.js'
import { testDatabase } from '../helpers/database.js'

t.test('binary COPY rows: header, one tuple per record, trailer', async t => {
  const id = '0f8fad5b-d9cb-469f-a165-70867728950e'
  const buf = copyRows(id, 7, ['{"a":"é"}', '{}'])
  t.equal(buf.subarray(0, 11).toString('latin1'), 'PGCOPY\n\xff\r\n\0')
  t.equal(buf.readInt32BE(11), 0, 'flags')
  t.equal(buf.readInt32BE(15), 0, 'header extension')
  let at = 19
  for (const [position, record] of ['{"a":"é"}', '{}'].entries()) {
    t.equal(buf.readInt16BE(at), 4, 'four fields')
    t.equal(buf.readInt32BE(at + 2), 16)
    t.equal(buf.subarray(at + 6, at + 22).toString('hex'), id.replaceAll('-', ''))
    t.equal(buf.readInt32BE(at + 26), 7, 'page')
    t.equal(buf.readInt32BE(at + 34), position, 'position')
    const length = buf.readInt32BE(at + 38)
    t.equal(buf.subarray(at + 42, at + 42 + length).toString('utf8'), record)
    at += 42 + length
  }
  t.equal(buf.readInt16BE(at), -1, 'trailer')
  t.equal(at + 2, buf.length, 'sized exactly')
  t.throws(() => copyRows("x'; DROP TABLE jobs; --", 1, []), /not a UUID/)
})

t.test('pages stored through COPY', async t => {
  const pool = new pg.Pool({ connectionString: await testDatabase(t) })
  t.teardown(() => pool.end())
  const newJob = async () => {
    const id = randomUUID()
    await pool.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, lease_owner)
      VALUES ($1, 'alpha', 'drchrono', 'patients', '{}', $2, 'running', 'w1')`, [id, randomUUID()])
    return id
  }
  const stored = async (id: string) =>
    (await pool.query('SELECT page, position, record FROM job_results WHERE job_id = $1 ORDER BY page, position', [id])).rows

  const records = [
    '{"name":"Zoë Ñúñez","city":"Łódź","note":"患者 🩺"}',
    '{"id":9007199254740993123,"n":-0.0e+5}',
    '{"escaped":"tab\\there \\"quoted\\" back\\\\slash \\u0000 \\ud83d"}',
    '{}',
    '{\n  "pretty": [1,\n 2]\r\n}',
    JSON.stringify({ big: 'x'.repeat(1_000_000) }),
  ]

  t.test('every byte survives, positions count from 0, the job counts what landed', async t => {
    const id = await newJob()
    const n = await savePage(pool, { jobId: id, workerId: 'w1', page: 3, records, checkpoint: { done: [3] }, progress: { pagesDone: 1 } })
    t.equal(n, records.length)
    const rows = await stored(id)
    t.same(rows.map(r => r.record), records)
    t.same(rows.map(r => [r.page, r.position]), records.map((_, i) => [3, i]))
    const job = (await pool.query('SELECT records, pages_done, checkpoint FROM jobs WHERE id = $1', [id])).rows[0]
    t.same(job, { records: records.length, pages_done: 1, checkpoint: { done: [3] } })
  })

  t.test('records given as bytes (views of an upstream page) are stored as the same text', async t => {
    const id = await newJob()
    const page = Buffer.from(`[${records.join(',')}]`)
    const views: Buffer[] = []
    let at = 1
    for (const r of records) {
      const n = Buffer.byteLength(r)
      views.push(page.subarray(at, at + n))
      at += n + 1
    }
    t.equal(await savePage(pool, { jobId: id, workerId: 'w1', page: 1, records: views, checkpoint: {}, progress: {} }), records.length)
    t.same((await stored(id)).map(r => r.record), records)
  })

  t.test('a page stored before is not stored again, and the job does not count it twice', async t => {
    const id = await newJob()
    await savePage(pool, { jobId: id, workerId: 'w1', page: 1, records: ['{"a":1}', '{"a":2}'], checkpoint: {}, progress: {} })
    const again = await savePage(pool, { jobId: id, workerId: 'w1', page: 1, records: ['{"a":1}', '{"a":2}'], checkpoint: {}, progress: {} })
    t.equal(again, 0)
    t.equal((await stored(id)).length, 2)
    t.equal((await pool.query('SELECT records FROM jobs WHERE id = $1', [id])).rows[0].records, 2)
    t.equal(await transaction(pool, client => insertRecords(client, id, 2, [])), 0, 'an empty page stores nothing')
  })

  t.test('no vacuum is triggered by inserts alone: results are deleted within the hour anyway', async t => {
    const { rows } = await pool.query("SELECT reloptions FROM pg_class WHERE relname = 'job_results'")
    t.same(rows[0]?.reloptions, ['autovacuum_vacuum_insert_threshold=-1'])
  })

  t.test('without the lease nothing is stored', async t => {
    const id = await newJob()
    await t.rejects(savePage(pool, { jobId: id, workerId: 'w2', page: 1, records: ['{"a":1}'], checkpoint: {}, progress: {} }), LeaseLostError)
    t.same(await stored(id), [])
  })

  t.test('a record PostgreSQL refuses rolls the whole page back', async t => {
    const id = await newJob()
    // A NUL byte cannot be stored in text; the upstream scanners never pass one, but if one came, no half page lands.
    await t.rejects(savePage(pool, { jobId: id, workerId: 'w1', page: 1, records: ['{"a":1}', '{"a":"\0"}'], checkpoint: { done: [1] }, progress: {} }))
    t.same(await stored(id), [])
    t.equal((await pool.query('SELECT records FROM jobs WHERE id = $1', [id])).rows[0].records, 0)
  })
})
