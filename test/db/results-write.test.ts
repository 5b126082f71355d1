/**
 * Storing a page of records: one row per page (parts for a large one), every record byte for byte (multi-byte
 * UTF-8, escapes, int64 numbers, empty objects, a record over 1 MiB), a replayed page adds nothing, and a write without
 * the job's lease is refused without storing anything.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { insertRecords, pageParts, PART_MAX_BYTES, savePage } from '../../src/db/sql/results.js'
import { LeaseLostError } from '../../src/domain/errors.js'
import { transaction } from '../../src/db/sql/sql.js'
import { testDatabase } from '../helpers/database.js'
import { randomText, storedRecords, storedRows } from '../helpers/stored-results.js'
import { CODEC_DEFLATE, CODEC_PLAIN } from '../../src/db/sql/body-codec.js'

/** A part's ends, decoded from PostgreSQL's binary int4[]. */
function endsOf (ends: Buffer): number[] {
  t.equal(ends.readInt32BE(0), 1, 'one dimension')
  t.equal(ends.readInt32BE(4), 0, 'no NULLs')
  t.equal(ends.readInt32BE(8), 23, 'of int4')
  t.equal(ends.readInt32BE(16), 1, 'from index 1')
  const n = ends.readInt32BE(12)
  t.equal(ends.length, 20 + 8 * n, 'sized exactly')
  return Array.from({ length: n }, (_, i) => { t.equal(ends.readInt32BE(20 + 8 * i), 4); return ends.readInt32BE(24 + 8 * i) })
}

t.test('pageParts: records side by side, a line feed after each, where each ends, split at the byte bound', async t => {
  const [part, ...more] = pageParts(['{"a":"é"}', '{}', ''])
  t.same(more, [])
  t.equal(part!.body.toString('utf8'), '{"a":"é"}\n{}\n\n')
  t.same(endsOf(part!.ends), [10, 13, 14], 'byte offsets, not characters')
  t.same([part!.first, part!.count, part!.plain], [0, 3, true])
  t.equal(pageParts(['{"a":\n1}'])[0]!.plain, false, 'a record with a line feed')
  t.equal(pageParts(['{"a":1}', '{"a":\r1}'])[0]!.plain, false, 'a record with a carriage return')
  t.equal(pageParts([Buffer.from('{"b":2}\n')])[0]!.plain, false, 'a record given as bytes, ending in a line feed')

  const split = pageParts(['aaaa', 'bbbb', 'cccc', 'dddddddddddd', 'e'], 10)
  t.same(split.map(p => [p.first, p.count, p.body.toString()]), [[0, 2, 'aaaa\nbbbb\n'], [2, 1, 'cccc\n'], [3, 1, 'dddddddddddd\n'], [4, 1, 'e\n']],
    'no part over the bound, a larger record alone')
  t.same(split.map(p => endsOf(p.ends)), [[4, 9], [4], [12], [1]], 'ends count from the part\'s start')
  t.same(pageParts([]), [])
  t.equal(PART_MAX_BYTES, 1024 * 1024)
})

t.test('pageParts: records given as spans of one buffer make the same parts as the records one by one', async t => {
  const records = ['aaaa', '{"a":"é"}', 'cccc', 'dddddddddddd', '{"x":\n1}', 'e']
  // Laid out as an upstream's array: separators, whitespace and other bytes between the spans.
  let text = '{"results":[ '
  const starts: number[] = []
  const ends: number[] = []
  for (const r of records) {
    starts.push(Buffer.byteLength(text))
    text += r
    ends.push(Buffer.byteLength(text))
    text += ' ,\n'
  }
  const spans = { bytes: Buffer.from(text + ']}'), starts: Int32Array.from([...starts, 0, 0]), ends: Int32Array.from([...ends, 0, 0]), length: records.length }
  const shape = (parts: ReturnType<typeof pageParts>) => parts.map(p => [p.first, p.count, p.plain, p.body.toString(), endsOf(p.ends)])
  for (const bound of [10, 16, PART_MAX_BYTES]) {
    t.same(shape(pageParts(spans, bound)), shape(pageParts(records, bound)), `bound ${bound}: the same parts, bytes and ends`)
  }
  t.same(pageParts({ bytes: Buffer.alloc(0), starts: new Int32Array(4), ends: new Int32Array(4), length: 0 }), [], 'no records, no parts (the arrays may be longer)')
})

t.test('pages stored as rows of result_pages', async t => {
  const pool = new pg.Pool({ connectionString: await testDatabase(t) })
  t.teardown(() => pool.end())
  const newJob = async () => {
    const id = randomUUID()
    await pool.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, lease_owner)
      VALUES ($1, 'alpha', 'drchrono', 'patients', '{}', $2, 'running', 'w1')`, [id, randomUUID()])
    return id
  }
  const stored = async (id: string) => await storedRows(pool, id)

  const records = [
    '{"name":"Zoë Ñúñez","city":"Łódź","note":"患者 🩺"}',
    '{"id":9007199254740993123,"n":-0.0e+5}',
    '{"escaped":"tab\\there \\"quoted\\" back\\\\slash \\u0000 \\ud83d"}',
    '{}',
    '{\n  "pretty": [1,\n 2]\r\n}',
    JSON.stringify({ big: 'x'.repeat(PART_MAX_BYTES) }),
  ]

  t.test('every byte survives, positions count from 0, the job counts what landed', async t => {
    const id = await newJob()
    const n = await savePage(pool, { jobId: id, workerId: 'w1', page: 3, records, checkpoint: { done: [3] }, progress: { pagesDone: 1 } })
    t.equal(n, records.length)
    const rows = await stored(id)
    t.same(rows.map(r => r.record), records)
    t.same(rows.map(r => [r.page, r.position]), records.map((_, i) => [3, i]))
    const parts = (await pool.query('SELECT first, count FROM result_pages WHERE job_id = $1 ORDER BY first', [id])).rows
    t.same(parts, [{ first: 0, count: 5 }, { first: 5, count: 1 }], 'the record over PART_MAX_BYTES has a part of its own')
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

  t.test('bodies are deflated by the gateway and stored as they come; ends are compressed with lz4 when the server has it', async t => {
    const { rows: [lz4] } = await pool.query("SELECT count(*)::int AS n FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")
    const { rows } = await pool.query(`SELECT attname, attstorage, attcompression FROM pg_attribute
      WHERE attrelid = 'result_pages'::regclass AND attname IN ('body', 'ends') ORDER BY 1`)
    t.same(rows.map(r => [r.attname, r.attstorage]), [['body', 'e'], ['ends', 'x']], 'body: out of line, never compressed by PostgreSQL')
    t.equal(rows[1].attcompression, lz4.n === 1 ? 'l' : '')
    const id = await newJob()
    const alike = Array.from({ length: 500 }, (_, i) => JSON.stringify({ i, kind: 'appointment', status: 'Complete', note: 'x'.repeat(i % 50) }))
    const random = Array.from({ length: 50 }, () => JSON.stringify({ pad: randomText(400) }))
    await transaction(pool, async client => {
      await insertRecords(client, id, 1, alike)
      await insertRecords(client, id, 2, random)
      await insertRecords(client, id, 3, ['{"a":1}'])
    })
    const { rows: stored } = await pool.query('SELECT page, codec, bytes, octet_length(body) AS size FROM result_pages WHERE job_id = $1 ORDER BY page', [id])
    const text = (records: string[]): number => Buffer.byteLength(records.join('\n') + '\n')
    t.same(stored.map(r => [r.page, r.codec, r.bytes]), [[1, CODEC_DEFLATE, text(alike)], [2, CODEC_PLAIN, text(random)], [3, CODEC_PLAIN, 8]],
      'deflated when a quarter smaller at least; random bytes and small pages as they are')
    t.ok(stored[0].size < text(alike) / 4, `the similar records' page in ${stored[0].size} bytes of ${text(alike)}`)
    t.same(await storedRecords(pool, id), [...alike, ...random, '{"a":1}'])
  })

  t.test('no vacuum is triggered by inserts alone: results are deleted within the hour anyway', async t => {
    const { rows } = await pool.query("SELECT reloptions FROM pg_class WHERE relname = 'result_pages'")
    t.same(rows[0]?.reloptions, ['autovacuum_vacuum_insert_threshold=-1'])
  })

  t.test('without the lease nothing is stored', async t => {
    const id = await newJob()
    await t.rejects(savePage(pool, { jobId: id, workerId: 'w2', page: 1, records: ['{"a":1}'], checkpoint: {}, progress: {} }), LeaseLostError)
    t.same(await stored(id), [])
  })

  t.test('a record PostgreSQL refuses rolls the whole page back', async t => {
    const id = await newJob()
    // A NUL byte cannot be served as JSON text, nor can bytes that are not UTF-8; the upstream scanners never pass
    // one, but if one came, no half page lands.
    const refused = /not UTF-8 text without NUL bytes/
    await t.rejects(savePage(pool, { jobId: id, workerId: 'w1', page: 1, records: ['{"a":1}', '{"a":"\0"}'], checkpoint: { done: [1] }, progress: {} }), refused)
    await t.rejects(savePage(pool, { jobId: id, workerId: 'w1', page: 1, records: ['{"a":1}', Buffer.from([0x22, 0xff, 0x22])], checkpoint: { done: [1] }, progress: {} }), refused)
    const big = JSON.stringify({ big: 'x'.repeat(PART_MAX_BYTES) })
    await t.rejects(savePage(pool, { jobId: id, workerId: 'w1', page: 1, records: ['{"a":1}', big, '{"a":"\0"}'], checkpoint: { done: [1] }, progress: {} }), refused, 'a refused record in a later part')
    t.same(await stored(id), [])
    t.equal((await pool.query('SELECT records FROM jobs WHERE id = $1', [id])).rows[0].records, 0)
  })
})
