/**
 * Results read as bytes: the binary COPY parser and its cut of a batch, the NDJSON and JSON-page builders, and the
 * COPY reads against a real PostgreSQL (exact bytes, keyset batches, connections released or dropped on every path).
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { deflateRawSync } from 'node:zlib'
import { batchStatement, parseResultCopy, readablePages, readResultBatch, streamResultBatches, unpackBatch } from '../../src/db/sql/result-stream.js'
import { CODEC_DEFLATE, CODEC_PLAIN } from '../../src/db/sql/body-codec.js'
import { pageParts } from '../../src/db/sql/results.js'
import { jsonPage, ndjsonChunks } from '../../src/api/result-bodies.js'
import { RECORD_HEADROOM, type BatchSize, type RecordBatch } from '../../src/domain/results.js'
import { CopyFormatError } from '../../src/domain/errors.js'
import { testDatabase } from '../helpers/database.js'
import { randomText, storePage, storePages } from '../helpers/stored-results.js'

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')

const int16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b }
const int32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b }

/**
 * A row as the batch statement sends it: page, first, skip, and the part's records (null: the row past the batch),
 * their text stored as it is or, with `deflate`, compressed as the gateway stores it.
 */
type Row = [page: number, first: number, skip: number, records: string[] | null, codec?: 'deflate']

/** Binary COPY data of result_pages rows, as PostgreSQL writes them (the parts as the gateway stores them). */
function copyData (rows: Row[], opts: { extension?: Buffer, flags?: number } = {}): Buffer {
  const extension = opts.extension ?? Buffer.alloc(0)
  const out: Buffer[] = [SIGNATURE, int32(opts.flags ?? 0), int32(extension.length), extension]
  for (const [page, first, skip, records, codec] of rows) {
    out.push(int16(8), int32(4), int32(page), int32(4), int32(first), int32(4), int32(skip))
    if (records === null) out.push(int32(-1), int32(-1), int32(-1), int32(-1), int32(-1))
    else {
      const [part] = pageParts(records, 2 ** 30)
      if (part === undefined) throw new Error('a row holds at least one record')
      const body = codec === 'deflate' ? deflateRawSync(part.body, { level: 1 }) : Buffer.from(part.body)
      out.push(int32(1), Buffer.from([part.plain ? 1 : 0]), int32(2), int16(codec === 'deflate' ? CODEC_DEFLATE : CODEC_PLAIN), int32(4), int32(part.body.length),
        int32(part.ends.length), Buffer.from(part.ends), int32(body.length), body)
    }
  }
  out.push(int16(-1))
  return Buffer.concat(out)
}

/** One row of one page holding `records` from position 0, nothing skipped. */
const onePage = (records: string[]): Buffer => copyData([[1, 0, 0, records]])

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

const parse = (data: Buffer, s: BatchSize = size(1_000_000)): RecordBatch => parseResultCopy(data, s).batch

t.test('parseResultCopy', async t => {
  t.test('slices each record\'s bytes exactly, with its page and position', async t => {
    const batch = parse(copyData([[7, 0, 0, tricky.slice(0, 3)], [7, 3, 0, tricky.slice(3)], [2_147_483_647, 10, 0, ['{"last":1}']]]))
    t.same(recordsOf(batch), [...tricky, '{"last":1}'])
    t.same(batch.pages, [7, 7, 7, 7, 7, 7, 7, 2_147_483_647])
    t.same(batch.positions, [0, 1, 2, 3, 4, 5, 6, 10])
    t.equal(Buffer.byteLength(recordsOf(batch)[1] as string), batch.ends[1]! - batch.starts[1]!, 'lengths are bytes, not characters')
    t.same(batch.runs, [{ first: 0, count: 3, plain: true }, { first: 3, count: 4, plain: false }, { first: 7, count: 1, plain: true }], 'one run per row, plain when no record holds a line break')
  })

  t.test('skip: the first row\'s records before the cursor are not in the batch', async t => {
    const batch = parse(copyData([[3, 0, 2, ['a', 'b', 'c', 'd']], [4, 0, 0, ['e']]]))
    t.same(recordsOf(batch), ['c', 'd', 'e'])
    t.same(batch.positions, [2, 3, 0])
    t.same(batch.runs, [{ first: 0, count: 2, plain: true }, { first: 2, count: 1, plain: true }])
  })

  t.test('a row with NULL records as the last tuple is not records: it says more follow', async t => {
    const batch = parse(copyData([[1, 0, 0, ['x', 'y']], [2, 0, 0, null]]))
    t.same(recordsOf(batch), ['x', 'y'])
    t.same(batch.positions, [0, 1])
    t.equal(batch.more, true)
    t.equal(parse(onePage(['x'])).more, false)
  })

  t.test('the batch is cut at its record limit and its byte cap (one record at least), the rest is `more`', async t => {
    const data = copyData([[1, 0, 0, ['aaaa', 'bbbb', 'cccc']], [2, 0, 0, ['dddd', 'eeee']]])
    const cut = parseResultCopy(data, size(4))
    t.same(recordsOf(cut.batch), ['aaaa', 'bbbb', 'cccc', 'dddd'])
    t.same([cut.batch.more, cut.cut, cut.rows], [true, true, 2])
    t.same(recordsOf(parse(data, size(2))), ['aaaa', 'bbbb'])
    t.same(recordsOf(parse(data, { limit: 100, maxBytes: 8 })), ['aaaa', 'bbbb'], 'a cap met exactly holds that record')
    t.same(recordsOf(parse(data, { limit: 100, maxBytes: 11 })), ['aaaa', 'bbbb'])
    t.same(recordsOf(parse(data, { limit: 100, maxBytes: 1 })), ['aaaa'], 'a record larger than the cap comes alone')
    const all = parseResultCopy(data, size(5))
    t.same([all.batch.more, all.cut], [false, false], 'a limit met exactly by the last record: nothing more')
  })

  t.test('no rows, and a header extension, are fine', async t => {
    t.same(parse(copyData([])).starts, [])
    t.same(recordsOf(parse(copyData([[1, 0, 0, ['x']]], { extension: Buffer.from('ext!') }))), ['x'])
  })

  t.test('anything else is refused', async t => {
    const good = copyData([[1, 0, 0, ['{"a":1}', '{"b":2}']]])
    for (let cut = 0; cut < good.length; cut++) {
      t.throws(() => parse(good.subarray(0, cut)), CopyFormatError, `cut at ${cut}`)
    }
    t.throws(() => parse(Buffer.concat([good, Buffer.from([0])])), /after the COPY trailer/)
    t.throws(() => parse(Buffer.from(good).fill(0x41, 0, 6)), /not binary COPY/)
    t.throws(() => parse(copyData([[1, 0, 0, null], [1, 1, 0, ['x']]])), /follows the one past/)
    t.throws(() => parse(copyData([[1, 0, 0, ['x']]], { flags: 0x10000 })), /OIDs/)
    const firstTuple = SIGNATURE.length + 8
    const twoFields = copyData([[1, 0, 0, ['x']]])
    twoFields.writeInt16BE(2, firstTuple)
    t.throws(() => parse(twoFields), /2 fields, expected 8/)
    const int8Page = copyData([[1, 0, 0, ['x']]])
    int8Page.writeInt32BE(8, firstTuple + 2)
    t.throws(() => parse(int8Page), /int4/)
    // page, first, skip (3 × 8), plain (4 + 1), codec (4 + 2), bytes (4 + 4), then ends: its length, then dimensions.
    const codecAt = firstTuple + 2 + 24 + 5
    const bytesAt = codecAt + 6
    const endsAt = bytesAt + 8
    const badCodec = copyData([[1, 0, 0, ['x']]])
    badCodec.writeInt16BE(2, codecAt + 4)
    t.throws(() => parse(badCodec), /unknown body codec 2/)
    const int4Codec = copyData([[1, 0, 0, ['x']]])
    int4Codec.writeInt32BE(4, codecAt)
    t.throws(() => parse(int4Codec), /codec must be an int2/)
    const int2Bytes = copyData([[1, 0, 0, ['x']]])
    int2Bytes.writeInt32BE(2, bytesAt)
    t.throws(() => parse(int2Bytes), /bytes must be an int4/)
    const wrongBytes = copyData([[1, 0, 0, ['x', 'y']]])
    wrongBytes.writeInt32BE(5, bytesAt + 4)
    t.throws(() => parse(wrongBytes), /length is not its text's/, 'a text length that is not the body\'s')
    const lastEndShort = copyData([[1, 0, 0, ['x', 'y']]])
    lastEndShort.writeInt32BE(2, endsAt + 4 + 32)
    t.throws(() => parse(lastEndShort), /length is not its text's/, 'bytes after the last record\'s line feed')
    const twoDims = copyData([[1, 0, 0, ['x']]])
    twoDims.writeInt32BE(2, endsAt + 4)
    t.throws(() => parse(twoDims), /one-dimensional/)
    const endPastBody = copyData([[1, 0, 0, ['x', 'y']]])
    endPastBody.writeInt32BE(5, endsAt + 4 + 24)
    t.throws(() => parse(endPastBody), /line feed/, 'a record that ends outside its body')
    const notAtLf = copyData([[1, 0, 0, ['xy', 'z']]])
    notAtLf.writeInt32BE(1, endsAt + 4 + 24)
    t.throws(() => parse(notAtLf), /line feed/, 'a record that ends where no line feed is')
    const falling = copyData([[1, 0, 0, ['a', 'bb', 'c']]])
    falling.writeInt32BE(1, endsAt + 4 + 32) // the second record's end (4) becomes 1: the first's, at its line feed
    t.throws(() => parse(falling), /do not rise/, 'ends that do not rise')
    const shortEnds = Buffer.concat([SIGNATURE, int32(0), int32(0), int16(8), int32(4), int32(1), int32(4), int32(0), int32(4), int32(0),
      int32(1), Buffer.from([1]), int32(2), int16(0), int32(4), int32(2), int32(8), int32(1), int32(0), int32(1), Buffer.from('x\n'), int16(-1)])
    t.throws(() => parse(shortEnds), CopyFormatError, 'an ends field too short for its header')
    const hugeExtension = copyData([])
    hugeExtension.writeInt32BE(1000, SIGNATURE.length + 4)
    t.throws(() => parse(hugeExtension), /ends early/)
  })
})

t.test('compressed bodies: cut from their ends, then unpacked into one buffer', async t => {
  const unpacked = async (data: Buffer, s: BatchSize = size(1_000_000)): Promise<{ batch: RecordBatch, done: number }> => {
    let done = 0
    const parsed = parseResultCopy(data, s)
    t.equal(parsed.packed, true, 'a compressed row gave records')
    const batch = await unpackBatch(parsed, () => { done++ })
    return { batch, done }
  }

  t.test('one compressed row: its records, after room for a response\'s head', async t => {
    const { batch, done } = await unpacked(copyData([[7, 0, 0, tricky, 'deflate']]))
    t.same(recordsOf(batch), tricky)
    t.same(batch.positions, tricky.map((_, i) => i))
    t.same(batch.runs, [{ first: 0, count: tricky.length, plain: false }])
    t.equal(batch.starts[0], RECORD_HEADROOM)
    t.equal(done, 1, 'the COPY data is let go once')
    t.equal(batch.release, undefined, 'a small batch: nothing to give back')
    const page = jsonPage(batch, 3, 'c', 9).toString()
    t.equal(page, `{"data":[${tricky.slice(0, 3).join(',')}],"nextCursor":"c","total":9}`, 'a JSON page built in it')
  })

  t.test('compressed and plain rows, a skip and a cut inside compressed ones, in stored order', async t => {
    const rows: Row[] = [[1, 0, 1, ['a', 'b\nb', 'c'], 'deflate'], [2, 0, 0, ['d', 'e']], [3, 0, 0, tricky, 'deflate'], [4, 0, 0, ['f']], [5, 0, 0, ['g', 'h', 'i'], 'deflate']]
    const all = ['b\nb', 'c', 'd', 'e', ...tricky, 'f', 'g', 'h', 'i']
    const { batch, done } = await unpacked(copyData(rows))
    t.same(recordsOf(batch), all)
    t.same(batch.pages, [1, 1, 2, 2, ...tricky.map(() => 3), 4, 5, 5, 5])
    t.same(batch.positions, [1, 2, 0, 1, ...tricky.map((_, i) => i), 0, 0, 1, 2])
    t.equal(done, 1)
    t.same(Buffer.concat(ndjsonChunks(batch)).toString(), all.map(r => r.replace(/[\r\n]/g, ' ')).join('\n') + '\n', 'NDJSON as from plain rows')
    for (const limit of [1, 2, 3, 4, 5, 9, 11, 12, 13, 14, 15]) {
      const cut = await unpacked(copyData(rows), size(limit))
      t.same(recordsOf(cut.batch), all.slice(0, limit), `limit ${limit}`)
      t.equal(cut.batch.more, limit < all.length)
    }
    const capped = await unpacked(copyData(rows), { limit: 100, maxBytes: 3 })
    t.same(recordsOf(capped.batch), ['b\nb'], 'a byte cap counts the text\'s bytes, not the compressed ones')
  })

  t.test('every mix of codecs reads the same records', async t => {
    const pages = [tricky.slice(0, 2), ['x'.repeat(5000), 'y'], tricky.slice(2), ['{"z":1}']]
    const plain = recordsOf(parse(copyData(pages.map((records, i) => [i + 1, 0, 0, records]))))
    for (let mask = 1; mask < 16; mask++) {
      const rows: Row[] = pages.map((records, i) => (mask & (1 << i)) !== 0 ? [i + 1, 0, 0, records, 'deflate'] : [i + 1, 0, 0, records])
      t.same(recordsOf((await unpacked(copyData(rows))).batch), plain, `mask ${mask}`)
    }
  })

  t.test('a large batch is joined in a buffer of the batch pool', async t => {
    const big = Array.from({ length: 300 }, (_, i) => JSON.stringify({ i, pad: 'p'.repeat(1000) }))
    const { batch } = await unpacked(copyData([[1, 0, 0, big, 'deflate'], [2, 0, 0, big]]))
    t.same(recordsOf(batch), [...big, ...big])
    // Not given back: the pool is the module's, and a later test reads which buffer it hands out.
    t.type(batch.release, 'function', 'to give back once sent')
    const out = jsonPage(batch, batch.starts.length, 'W'.repeat(60), 2_147_483_647)
    t.equal(out.buffer, batch.data.buffer, 'a JSON page of all its records is built in it')
    t.equal(out.toString(), `{"data":[${[...big, ...big].join(',')}],"nextCursor":"${'W'.repeat(60)}","total":2147483647}`)
  })

  t.test('a body that is not what its row says is refused', async t => {
    const good = copyData([[1, 0, 0, ['{"a":1}', '{"b":2}'], 'deflate']])
    const bodyAt = good.length - 2 - deflateRawSync('{"a":1}\n{"b":2}\n', { level: 1 }).length
    const garbled = Buffer.from(good)
    garbled.fill(0xff, bodyAt, good.length - 2)
    await t.rejects(unpacked(garbled), CopyFormatError, 'not deflate')
    const cutShort = Buffer.from(good)
    cutShort.writeInt32BE(good.length - 2 - bodyAt - 3, bodyAt - 4) // the body field's length: its last bytes left out
    await t.rejects(unpacked(Buffer.concat([cutShort.subarray(0, good.length - 5), cutShort.subarray(good.length - 2)])), CopyFormatError, 'cut short')
    const longer = copyData([[1, 0, 0, ['{"a":1}', '{"b":2}'], 'deflate']])
    // A body that inflates to more than its row says: bytes 4, ends of 1 and 3 describe a text of 4 bytes, not 16.
    const bytesAt = SIGNATURE.length + 8 + 2 + 24 + 5 + 6
    const endsAt = bytesAt + 8
    longer.writeInt32BE(4, bytesAt + 4)
    longer.writeInt32BE(1, endsAt + 4 + 24)
    longer.writeInt32BE(3, endsAt + 4 + 32)
    await t.rejects(unpacked(longer), /does not inflate to its text/, 'more text than the row says')
    const bomb = copyData([[1, 0, 0, ['x'.repeat(100_000)], 'deflate']])
    // A text of 2 GB from a body of 100 bytes or so: refused before anything is allocated for it.
    bomb.writeInt32BE(2_000_000_000, bytesAt + 4)
    bomb.writeInt32BE(1_999_999_999, endsAt + 4 + 24)
    t.throws(() => parse(bomb), /length is not its text's/, 'more than deflate can have shrunk')
    // A cursor past the first record, whose end was moved off its line feed: the skipped-to record starts there.
    const skipped = copyData([[1, 0, 1, ['ab', 'cd'], 'deflate']])
    skipped.writeInt32BE(1, endsAt + 4 + 24)
    await t.rejects(unpacked(skipped), /line feed/, 'a skipped-to record not after a line feed')
    // The first record's end moved off its line feed: only the text shows it.
    const offLf = Buffer.from(good)
    offLf.writeInt32BE(3, endsAt + 4 + 24)
    await t.rejects(unpacked(offLf), /line feed/)
    const pastText = Buffer.from(good)
    pastText.writeInt32BE(20, endsAt + 4 + 24)
    t.throws(() => parse(pastText), /line feed/, 'an end past the text, from ends alone')
  })
})

t.test('batchStatement writes only checked values into the text', async t => {
  const id = randomUUID()
  t.match(batchStatement(id, null, size(1001), 4), `job_id = '${id}'::uuid AND page >= -1 AND (page > -1 OR first + count > 0)`)
  t.match(batchStatement(id, { page: 3, position: 999 }, size(5), 4), /CASE WHEN page = 3 THEN greatest\(0, 1000 - first\).*ORDER BY page, first LIMIT 5\) AS s/s)
  t.match(batchStatement(id, null, { limit: 5, maxBytes: 4096 }, 2), /sum\(n\) OVER w - n < 5 AND \(sum\(n\) OVER w = n OR sum\(b\) OVER w - b < 4096\)/)
  t.match(batchStatement(id, null, size(5), 2), /ORDER BY page, first\) TO STDOUT \(FORMAT binary\)$/)
  t.throws(() => batchStatement(`${id}' OR '1'='1`, null, size(1), 1), /UUID/)
  t.throws(() => batchStatement('not-a-uuid', null, size(1), 1), /UUID/)
  t.throws(() => batchStatement(id, { page: 1.5, position: 0 }, size(1), 1), /int4/)
  t.throws(() => batchStatement(id, { page: 1, position: 2 ** 31 }, size(1), 1), /int4/)
  t.throws(() => batchStatement(id, { page: 1, position: 2 ** 31 - 1 }, size(1), 1), /int4/, 'no position can follow the last one')
  t.throws(() => batchStatement(id, { page: Number.NaN, position: 0 }, size(1), 1), /int4/)
  t.throws(() => batchStatement(id, null, size(0), 1), /limit/)
  t.throws(() => batchStatement(id, null, size(2.5), 1), /limit/)
  t.throws(() => batchStatement(id, null, { limit: 1, maxBytes: 0 }, 1), /byte cap/)
  t.throws(() => batchStatement(id, null, { limit: 1, maxBytes: 1.5 }, 1), /byte cap/)
  t.throws(() => batchStatement(id, null, { limit: 1, maxBytes: Number.POSITIVE_INFINITY }, 1), /byte cap/)
  t.throws(() => batchStatement(id, null, size(1), 0), /rows/)
})

t.test('ndjsonChunks', async t => {
  const batchOf = (records: string[]): RecordBatch => parse(records.length === 0 ? copyData([]) : onePage(records))
  const text = (batch: RecordBatch): string => Buffer.concat(ndjsonChunks(batch)).toString('utf8')
  const folded = (r: string): string => r.replace(/[\r\n]/g, ' ')

  t.test('one line per record, line breaks inside records folded to spaces', async t => {
    const out = text(batchOf(tricky))
    t.equal(out, tricky.map(folded).join('\n') + '\n')
    t.equal(out.split('\n').length, tricky.length + 1)
  })

  t.test('line breaks at every edge of a record', async t => {
    const records = ['\n', '\r', '\r\n', '\n\n{"a":1}\n\n', '{"a":1}\n', '\n{"a":1}', '', '', '{"b":"\u2028"}']
    t.equal(text(batchOf(records)), records.map(folded).join('\n') + '\n')
  })

  t.test('records without line breaks are the stored bytes, sliced, not copied', async t => {
    const records = Array.from({ length: 500 }, (_, i) => JSON.stringify({ i, s: 'é'.repeat(i % 7), big: '123456789012345678901234567890' }))
    const batch = batchOf(records)
    const out = ndjsonChunks(batch)
    t.equal(out.length, 1, 'one chunk per stored row')
    t.ok(out[0]!.equals(Buffer.from(records.join('\n') + '\n')))
    t.equal(out[0]!.buffer, batch.data.buffer, 'a view of the batch\'s own buffer')
  })

  t.test('several rows, a skip and a row past the batch', async t => {
    const batch = parse(copyData([[1, 0, 1, ['a', 'b\nb']], [2, 0, 0, ['c', 'd']], [3, 0, 0, null]]))
    t.equal(text(batch), 'b b\nc\nd\n')
  })

  t.test('an empty batch is no chunk', async t => {
    t.same(ndjsonChunks(batchOf([])), [])
  })
})

t.test('jsonPage is the envelope around the records as stored', async t => {
  const batchOf = (records: string[]): RecordBatch => parse(records.length === 0 ? copyData([]) : onePage(records))
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

  t.test('a batch without room before its first record is built in a copy', async t => {
    // A page is built in its batch's buffer, so each is built from a batch of its own.
    const unframed = (): RecordBatch => {
      const starts: number[] = []
      const ends: number[] = []
      let at = 0
      for (const r of tricky) { starts.push(at); at += Buffer.byteLength(r); ends.push(at); at++ }
      const data = Buffer.from(tricky.map(r => r + '\n').join(''))
      const runs = [{ first: 0, count: tricky.length, plain: false }]
      return { data, starts, ends, pages: tricky.map(() => 1), positions: tricky.map((_, i) => i), runs, more: false }
    }
    for (let count = 0; count <= tricky.length; count++) {
      t.equal(jsonPage(unframed(), count, 'c', 7).toString('utf8'), expected(tricky.slice(0, count), 'c', 7), `${count} records`)
    }
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
    await storePages(pool, id, records, perPage)
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

  t.test('readablePages: the last of pages 1..n with none missing, looked for after the pages known', async t => {
    const id = randomUUID()
    await pool.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status)
      VALUES ($1, 'alpha', 'drchrono', 'patients', '{}', $2, 'running')`, [id, randomUUID()])
    t.equal(await readablePages(pool, id), null, 'nothing saved')
    for (const p of [2, 3]) await storePage(pool, id, p, ['{}'])
    t.equal(await readablePages(pool, id), null, 'page 1 missing')
    await storePage(pool, id, 1, ['{}'])
    await storePage(pool, id, 5, ['{}'])
    t.equal(await readablePages(pool, id), 3, 'up to the gap at 4')
    t.equal(await readablePages(pool, id, 3), null, 'nothing new after page 3')
    t.equal(await readablePages(pool, id, 2), 3, 'known 1..2: page 3 follows')
    await storePage(pool, id, 4, ['{}'])
    t.equal(await readablePages(pool, id, 3), 5, 'the gap filled: through page 5')
    t.equal(await readablePages(pool, id), 5, 'the same from the start')
  })

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
    const statement = batchStatement(jobId, { page: 2, position: 1 }, size(3), 4)
    const select = /^COPY \((.*)\) TO STDOUT/s.exec(statement)?.[1] as string
    const { rows } = await pool.query(`EXPLAIN ${select}`)
    const plan = rows.map(r => r['QUERY PLAN']).join('\n')
    t.match(plan, /Index Scan (using|on) result_pages_pkey/)
    t.match(plan, /Index Cond: \(\(job_id = .*\) AND \(page >= 2\)\)/)
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

  t.test('streamResultBatches reads ahead of a slow reader by two batches, no more, and holds no connection while it waits', async t => {
    let copies = 0
    const counting = new Proxy(pool, {
      get (target, key) {
        if (key === 'connect') return async () => { copies++; return await target.connect() }
        const value = Reflect.get(target, key, target) as unknown
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    })
    const ahead: number[] = []
    let given = 0
    for await (const batch of streamResultBatches(counting, jobId, size(5))) {
      given++
      // A slow reader: it takes its time until the reads ahead have settled (no COPY started for 100 ms, none running).
      for (let seen = -1, waited = 0; (seen !== copies || pool.idleCount !== pool.totalCount) && waited < 30_000; waited += 100) {
        seen = copies
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      t.equal(pool.idleCount, pool.totalCount, `batch ${given}: no connection is held while the reader takes its time`)
      ahead.push(copies - given)
      t.ok(batch.starts.length > 0)
    }
    t.same(ahead, [2, 2, 2, 2, 1, 0], 'the next batch and the COPY of the one after it, until the end')
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
    await locker.query('LOCK TABLE result_pages IN ACCESS EXCLUSIVE MODE')
    const before = pool.totalCount
    const read = readResultBatch(pool, jobId, null, size(1000))
    read.catch(() => {})
    let killed = 0
    for (let i = 0; i < 200 && killed === 0; i++) {
      const { rows } = await locker.query(`SELECT pg_terminate_backend(pid) FROM pg_locks
        WHERE relation = 'result_pages'::regclass AND NOT granted`)
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

t.test('a batch read in several chunks comes in a reused buffer once the last one was given back', async t => {
  const url = await testDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  t.teardown(() => pool.end())
  const id = randomUUID()
  await pool.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records, finished_at, expires_at)
    VALUES ($1, 'alpha', 'drchrono', 'patients', '{}', $2, 'completed', 3000, now(), now() + interval '1 hour')`, [id, randomUUID()])
  // Random text, which deflate cannot shrink by a quarter: stored as it is, so each batch is the COPY data itself.
  const records = Array.from({ length: 3000 }, (_, i) => `{"i":${i},"pad":"${randomText(400)}"}`)
  await storePages(pool, id, records, 1000)
  t.same((await pool.query('SELECT DISTINCT codec FROM result_pages WHERE job_id = $1', [id])).rows, [{ codec: CODEC_PLAIN }])
  const size: BatchSize = { limit: 50_000, maxBytes: 1024 * 1024 }
  const first = await readResultBatch(pool, id, null, size)
  t.type(first.release, 'function', 'a batch of over 256 KB in several COPY chunks is pooled')
  const memory = first.data.buffer
  first.release?.()
  first.release?.() // twice: given back once
  const count = first.starts.length
  const second = await readResultBatch(pool, id, { page: first.pages[count - 1] as number, position: first.positions[count - 1] as number }, size)
  t.equal(second.data.buffer, memory, 'the given-back buffer holds the next batch')
  const third = await readResultBatch(pool, id, null, size)
  t.not(third.data.buffer, memory, 'while the second holds it, another batch gets its own')
  const text = (b: RecordBatch): string[] => b.starts.map((s, i) => b.data.subarray(s, b.ends[i]).toString())
  t.same(text(second), records.slice(count, count + second.starts.length), 'the second batch, whole in the reused buffer')
  t.same(text(third), records.slice(0, third.starts.length), 'the third, in its own')
})
