/**
 * Results read as bytes: the binary COPY parser, the NDJSON and JSON-page builders, and the COPY reads against a
 * real PostgreSQL (exact bytes, keyset batches, connections released or dropped on every path).
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { batchStatement, parseResultCopy, readResultBatch, streamResultBatches } from '../../src/db/sql/result-stream.js'
import { jsonPage, ndjsonChunk } from '../../src/api/result-bodies.js'
import type { BatchSize, RecordBatch } from '../../src/domain/results.js'
import { CopyFormatError } from '../../src/domain/errors.js'
import { testDatabase } from '../helpers/database.js'

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')

const int16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b }
const int32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b }

/** Binary COPY data of (page, position, record) rows, as PostgreSQL writes it (a null record is a NULL field). */
function copyData (rows: Array<[number, number, string | null]>, opts: { extension?: Buffer, flags?: number } = {}): Buffer {
  const extension = opts.extension ?? Buffer.alloc(0)
  const parts: Buffer[] = [SIGNATURE, int32(opts.flags ?? 0), int32(extension.length), extension]
  for (const [page, position, record] of rows) {
    parts.push(int16(3), int32(4), int32(page), int32(4), int32(position))
    if (record === null) parts.push(int32(-1))
    else {
      const bytes = Buffer.from(record, 'utf8')
      parts.push(int32(bytes.length), bytes)
    }
  }
  parts.push(int16(-1))
  return Buffer.concat(parts)
}

/** A batch size limited by its record count alone (a byte cap of 1 GiB). */
const size = (limit: number): BatchSize => ({ limit, maxBytes: 2 ** 30 })

const recordsOf = (batch: RecordBatch): string[] => batch.starts.map((s, i) => batch.data.toString('utf8', s, batch.ends[i]))

// Multi-byte UTF-8 (2, 3 and 4 bytes), an empty string, an int64 beyond JS's safe integers, escapes that must stay
// escapes, and bytes the COPY header is made of (LF, CR, 0xff) inside text.
const tricky = [
  '{"id":1,"name":"Zoë Ångström"}',
  '{"id":2,"city":"東京","emoji":"🩺"}',
  '',
  '{"id":9007199254740993,"note":"int64 stays as written"}',
  '{"escaped":"line\\nbreak \\"quoted\\" \\\\ \\u00e9"}',
  '{\n  "pretty": true,\r\n  "nested": {"a": [1, 2]}\n}',
  'PGCOPY\n\u00ff\r\n',
]

t.test('parseResultCopy', async t => {
  t.test('slices each record\'s bytes exactly, with its page and position', async t => {
    // Positions 10 and 13 are LF and CR in the int32's last byte; -1 is the trailer's bytes.
    const rows = tricky.map((r, i): [number, number, string] => [i === 6 ? 2_147_483_647 : 7, [10, 13, 255, 0, 65535, 3, -1][i] as number, r])
    const batch = parseResultCopy(copyData(rows))
    t.same(recordsOf(batch), tricky)
    t.same(batch.pages, rows.map(r => r[0]))
    t.same(batch.positions, rows.map(r => r[1]))
    t.equal(Buffer.byteLength(recordsOf(batch)[1] as string), batch.ends[1]! - batch.starts[1]!, 'lengths are bytes, not characters')
  })

  t.test('a NULL record as the last tuple is not a record: it says more follow', async t => {
    const batch = parseResultCopy(copyData([[1, 0, 'x'], [1, 1, 'y'], [2, 0, null]]))
    t.same(recordsOf(batch), ['x', 'y'])
    t.same(batch.positions, [0, 1])
    t.equal(batch.more, true)
    t.equal(parseResultCopy(copyData([[1, 0, 'x']])).more, false)
  })

  t.test('no rows, and a header extension, are fine', async t => {
    t.same(parseResultCopy(copyData([])).starts, [])
    t.same(recordsOf(parseResultCopy(copyData([[1, 0, 'x']], { extension: Buffer.from('ext!') }))), ['x'])
  })

  t.test('anything else is refused', async t => {
    const good = copyData([[1, 0, '{"a":1}'], [1, 1, '{"b":2}']])
    for (let cut = 0; cut < good.length; cut++) {
      t.throws(() => parseResultCopy(good.subarray(0, cut)), CopyFormatError, `cut at ${cut}`)
    }
    t.throws(() => parseResultCopy(Buffer.concat([good, Buffer.from([0])])), /after the COPY trailer/)
    t.throws(() => parseResultCopy(Buffer.from(good).fill(0x41, 0, 6)), /not binary COPY/)
    t.throws(() => parseResultCopy(copyData([[1, 0, null], [1, 1, 'x']])), /NULL before the last/)
    t.throws(() => parseResultCopy(copyData([[1, 0, 'x'], [1, 1, null], [1, 2, null]])), /NULL before the last/)
    t.throws(() => parseResultCopy(copyData([[1, 0, 'x']], { flags: 0x10000 })), /OIDs/)
    const firstTuple = SIGNATURE.length + 8
    const twoFields = copyData([[1, 0, 'x']])
    twoFields.writeInt16BE(2, firstTuple)
    t.throws(() => parseResultCopy(twoFields), /2 fields/)
    const int8Page = copyData([[1, 0, 'x']])
    int8Page.writeInt32BE(8, firstTuple + 2)
    t.throws(() => parseResultCopy(int8Page), /int4/)
    const longRecord = copyData([[1, 0, 'x']])
    longRecord.writeInt32BE(2, firstTuple + 2 + 16)
    t.throws(() => parseResultCopy(longRecord), CopyFormatError, 'a record longer than the data')
    const hugeExtension = copyData([])
    hugeExtension.writeInt32BE(1000, SIGNATURE.length + 4)
    t.throws(() => parseResultCopy(hugeExtension), /ends early/)
  })
})

t.test('batchStatement writes only checked values into the text', async t => {
  const id = randomUUID()
  t.match(batchStatement(id, null, size(1001)), `job_id = '${id}'::uuid AND (page, position) > (-1::int, -1::int)`)
  t.match(batchStatement(id, { page: 3, position: 999 }, size(5)), /> \(3::int, 999::int\)\s+WINDOW .*ORDER BY page, position LIMIT 6\) AS batch/s)
  t.match(batchStatement(id, null, { limit: 5, maxBytes: 4096 }), /n <= 5 AND \(n = 1 OR upto <= 4096\).*octet_length\(record\) <= 4096\s+ORDER BY page, position\) TO STDOUT \(FORMAT binary\)$/s)
  t.throws(() => batchStatement(`${id}' OR '1'='1`, null, size(1)), /UUID/)
  t.throws(() => batchStatement('not-a-uuid', null, size(1)), /UUID/)
  t.throws(() => batchStatement(id, { page: 1.5, position: 0 }, size(1)), /int4/)
  t.throws(() => batchStatement(id, { page: 1, position: 2 ** 31 }, size(1)), /int4/)
  t.throws(() => batchStatement(id, { page: Number.NaN, position: 0 }, size(1)), /int4/)
  t.throws(() => batchStatement(id, null, size(0)), /limit/)
  t.throws(() => batchStatement(id, null, size(2.5)), /limit/)
  t.throws(() => batchStatement(id, null, { limit: 1, maxBytes: 0 }), /byte cap/)
  t.throws(() => batchStatement(id, null, { limit: 1, maxBytes: 1.5 }), /byte cap/)
  t.throws(() => batchStatement(id, null, { limit: 1, maxBytes: Number.POSITIVE_INFINITY }), /byte cap/)
})

t.test('ndjsonChunk', async t => {
  const batchOf = (records: string[]): RecordBatch => parseResultCopy(copyData(records.map((r, i) => [1, i, r])))
  const folded = (r: string): string => r.replace(/[\r\n]/g, ' ')

  t.test('one line per record, line breaks inside records folded to spaces', async t => {
    const out = ndjsonChunk(batchOf(tricky))
    t.equal(out.toString('utf8'), tricky.map(folded).join('\n') + '\n')
    t.equal(out.toString('utf8').split('\n').length, tricky.length + 1)
  })

  t.test('line breaks at every edge of a record', async t => {
    const records = ['\n', '\r', '\r\n', '\n\n{"a":1}\n\n', '{"a":1}\n', '\n{"a":1}', '', '', '{"b":"\u2028"}']
    t.equal(ndjsonChunk(batchOf(records)).toString('utf8'), records.map(folded).join('\n') + '\n')
  })

  t.test('records without line breaks are copied byte for byte', async t => {
    const records = Array.from({ length: 500 }, (_, i) => JSON.stringify({ i, s: 'é'.repeat(i % 7), big: '123456789012345678901234567890' }))
    const batch = batchOf(records)
    const out = ndjsonChunk(batch)
    t.ok(out.equals(Buffer.from(records.join('\n') + '\n')))
    t.equal(out.buffer, batch.data.buffer, 'built in the batch\'s own buffer')
  })

  t.test('an empty batch is an empty chunk', async t => {
    t.equal(ndjsonChunk(batchOf([])).length, 0)
  })
})

t.test('jsonPage is the envelope around the records as stored', async t => {
  const batchOf = (records: string[]): RecordBatch => parseResultCopy(copyData(records.map((r, i) => [1, i, r])))
  const expected = (records: string[], cursor: string | null, total: number): string =>
    `{"data":[${records.join(',')}],"nextCursor":${JSON.stringify(cursor)},"total":${total}}`
  t.equal(jsonPage(batchOf(tricky), tricky.length, null, 7).toString('utf8'), expected(tricky, null, 7))
  t.equal(jsonPage(batchOf(tricky), 3, 'abc', 1_000_000).toString('utf8'), expected(tricky.slice(0, 3), 'abc', 1_000_000))
  t.equal(jsonPage(batchOf(tricky), 0, null, 0).toString('utf8'), '{"data":[],"nextCursor":null,"total":0}')
  t.equal(jsonPage(batchOf([]), 0, null, 0).toString('utf8'), '{"data":[],"nextCursor":null,"total":0}')
  const parsed = JSON.parse(jsonPage(batchOf(tricky), 2, null, 2).toString('utf8'))
  t.same(parsed.data, [JSON.parse(tricky[0] as string), JSON.parse(tricky[1] as string)])

  t.test('the envelope is longer than the framing of one or two short records: it grows', async t => {
    const cursor = 'W' + 'x'.repeat(40)
    for (const records of [[''], ['{}'], ['{}', '{}'], ['1', '2', '3'], ['é'], ['{"a":1}', '{"b":2}', '{"c":3}', '{"d":4}']]) {
      for (let count = 0; count <= records.length; count++) {
        t.equal(jsonPage(batchOf(records), count, cursor, 2_147_483_647).toString('utf8'), expected(records.slice(0, count), cursor, 2_147_483_647), `${count} of ${JSON.stringify(records)}`)
      }
    }
  })

  t.test('large pages are built in the batch\'s own buffer', async t => {
    const records = Array.from({ length: 1001 }, (_, i) => JSON.stringify({ i, s: 'ü'.repeat(i % 13) }))
    const batch = batchOf(records)
    const out = jsonPage(batch, 1000, 'cursor', 5000)
    t.equal(out.toString('utf8'), expected(records.slice(0, 1000), 'cursor', 5000))
    t.equal(out.buffer, batch.data.buffer)
  })
})

t.test('COPY reads against PostgreSQL', async t => {
  const url = await testDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  pool.on('error', () => {}) // a terminated idle client; the tests below check what they expect to see
  t.teardown(() => pool.end())
  const insertJob = async (records: string[], perPage: number): Promise<string> => {
    const id = randomUUID()
    await pool.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records)
      VALUES ($1, 'alpha', 'drchrono', 'patients', '{}', $2, 'completed', $3)`, [id, randomUUID(), records.length])
    await pool.query(`INSERT INTO job_results (job_id, page, position, record)
      SELECT $1, (i - 1) / $3::int + 1, (i - 1) % $3::int, r FROM unnest($2::text[]) WITH ORDINALITY AS u(r, i)`, [id, records, perPage])
    return id
  }
  const settled = async (): Promise<void> => {
    // Connections go back to the pool a moment after the last byte (the COPY's ReadyForQuery).
    for (let i = 0; i < 100 && pool.idleCount !== pool.totalCount; i++) await new Promise(resolve => setTimeout(resolve, 20))
  }
  // A record of 1 MB arrives in many socket chunks: it is read whole all the same.
  const big = JSON.stringify({ big: 'ü'.repeat(500_000) })
  const records = [...tricky, big, ...Array.from({ length: 20 }, (_, i) => `{"n":${i}}`)]
  const jobId = await insertJob(records, 4)

  t.test('a batch is the stored bytes, in (page, position) order, after a keyset position', async t => {
    const all = await readResultBatch(pool, jobId, null, size(1000))
    t.same(recordsOf(all), records)
    t.same(all.pages.slice(0, 6), [1, 1, 1, 1, 2, 2])
    t.same(all.positions.slice(0, 6), [0, 1, 2, 3, 0, 1])
    const after = await readResultBatch(pool, jobId, { page: 2, position: 1 }, size(3))
    t.same(recordsOf(after), records.slice(6, 9))
    t.same(recordsOf(await readResultBatch(pool, jobId, { page: 99, position: 0 }, size(3))), [])
    t.same(recordsOf(await readResultBatch(pool, randomUUID(), null, size(3))), [], 'another job has no rows here')
    await settled()
    t.equal(pool.idleCount, pool.totalCount, 'every connection went back')
  })

  t.test('the plan is the primary key\'s index, keyset in the index condition', async t => {
    const statement = batchStatement(jobId, { page: 2, position: 1 }, size(3))
    const select = /^COPY \((.*)\) TO STDOUT/s.exec(statement)?.[1] as string
    const { rows } = await pool.query(`EXPLAIN ${select}`)
    const plan = rows.map(r => r['QUERY PLAN']).join('\n')
    // On a table this small the planner may take a bitmap scan; either way the keyset bounds the index scan.
    t.match(plan, /Index Scan (using|on) job_results_pkey/)
    t.match(plan, /Index Cond: \(\(job_id = .*\) AND \(ROW\(page, "position"\) > ROW\(2, 1\)\)\)/)
  })

  t.test('streamResultBatches: every record once, in order, in batches of the size asked', async t => {
    const sizes: number[] = []
    const seen: string[] = []
    for await (const batch of streamResultBatches(pool, jobId, size(5))) {
      sizes.push(batch.starts.length)
      seen.push(...recordsOf(batch))
    }
    t.same(seen, records)
    t.same(sizes, [5, 5, 5, 5, 5, 3])
    const exact: number[] = []
    for await (const batch of streamResultBatches(pool, jobId, size(records.length))) exact.push(batch.starts.length)
    t.same(exact, [records.length], 'a job of exactly one batch: the empty read after it yields nothing')
    await settled()
    t.equal(pool.idleCount, pool.totalCount)
  })

  t.test('a batch ends at the byte cap: the records that fit, at least one, and `more` while any follow', async t => {
    const bytes = records.map(r => Buffer.byteLength(r))
    for (const maxBytes of [1, 20, 64, 200, 1_000_100, 2_000_000]) {
      const seen: string[] = []
      let after = null
      for (let reads = 0; reads < 100; reads++) {
        const batch: RecordBatch = await readResultBatch(pool, jobId, after, { limit: 1000, maxBytes })
        const got = recordsOf(batch)
        const first = seen.length
        const used = bytes.slice(first, first + got.length).reduce((a, b) => a + b, 0)
        t.ok(got.length >= 1, `cap ${maxBytes}: a batch holds at least one record`)
        if (got.length > 1) t.ok(used <= maxBytes, `cap ${maxBytes}: ${got.length} records of ${used} bytes`)
        const next = bytes[first + got.length]
        t.equal(batch.more, next !== undefined, `cap ${maxBytes}: more says whether records follow`)
        if (next !== undefined) t.ok(used + next > maxBytes, `cap ${maxBytes}: the next record would not have fitted`)
        seen.push(...got)
        if (!batch.more) break
        after = { page: batch.pages.at(-1) as number, position: batch.positions.at(-1) as number }
      }
      t.same(seen, records, `cap ${maxBytes}: every record once, in order`)
    }
    const exact = bytes.slice(0, 4).reduce((a, b) => a + b, 0)
    t.same(recordsOf(await readResultBatch(pool, jobId, null, { limit: 1000, maxBytes: exact })), records.slice(0, 4), 'a cap met exactly holds that record')
    const limited = await readResultBatch(pool, jobId, null, { limit: 3, maxBytes: 2 ** 30 })
    t.same(recordsOf(limited), records.slice(0, 3))
    t.equal(limited.more, true, 'a batch the record limit ended says more follow')
  })

  t.test('streamResultBatches under a byte cap: every record once, each batch within the cap or a record alone', async t => {
    const seen: string[] = []
    let batches = 0
    for await (const batch of streamResultBatches(pool, jobId, { limit: 1000, maxBytes: 100 })) {
      const got = recordsOf(batch)
      const used = got.reduce((a, r) => a + Buffer.byteLength(r), 0)
      t.ok(got.length === 1 || used <= 100, `batch ${batches}: ${got.length} records of ${used} bytes`)
      seen.push(...got)
      batches++
    }
    t.same(seen, records)
    t.ok(batches >= 3, 'the 1 MB record and its neighbours came in batches of their own')
    await settled()
    t.equal(pool.idleCount, pool.totalCount)
  })

  t.test('a reader that stops early leaves no connection behind', async t => {
    const batches = streamResultBatches(pool, jobId, size(2))
    t.equal((await batches.next()).done, false)
    await batches.return(undefined) // the next batch's read is in flight
    await settled()
    t.equal(pool.idleCount, pool.totalCount)
    t.same(recordsOf(await readResultBatch(pool, jobId, null, size(2))), records.slice(0, 2))
  })

  t.test('a connection lost mid-COPY fails the read, is dropped, and the pool goes on', async t => {
    const locker = new pg.Client({ connectionString: url })
    await locker.connect()
    t.teardown(() => locker.end())
    await pool.query('SELECT 1') // at least one idle connection to compare with
    await locker.query('BEGIN')
    await locker.query('LOCK TABLE job_results IN ACCESS EXCLUSIVE MODE')
    const before = pool.totalCount
    const read = readResultBatch(pool, jobId, null, size(1000))
    read.catch(() => {})
    let killed = 0
    for (let i = 0; i < 200 && killed === 0; i++) {
      const { rows } = await locker.query(`SELECT pg_terminate_backend(pid) FROM pg_locks
        WHERE relation = 'job_results'::regclass AND NOT granted`)
      killed = rows.length
      if (killed === 0) await new Promise(resolve => setTimeout(resolve, 20))
    }
    t.equal(killed, 1, 'the COPY was waiting on the lock and was terminated')
    await locker.query('ROLLBACK')
    await t.rejects(read, /terminat/)
    await settled()
    t.ok(pool.totalCount <= before, 'the broken connection was not put back')
    t.equal(pool.idleCount, pool.totalCount)
    t.same(recordsOf(await readResultBatch(pool, jobId, null, size(1000))), records, 'the next read works')
  })

  t.test('the streams of one pool never hold more connections than reads in flight', async t => {
    const many = await Promise.all(Array.from({ length: 8 }, async () => {
      const seen: string[] = []
      for await (const batch of streamResultBatches(pool, jobId, size(3))) seen.push(...recordsOf(batch))
      return seen
    }))
    for (const seen of many) t.same(seen, records)
    await settled()
    t.ok(pool.totalCount <= 4)
    t.equal(pool.idleCount, pool.totalCount)
  })
})
