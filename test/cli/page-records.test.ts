/**
 * The command line cuts a results page into NDJSON without parsing its records (src/cli/page-records.ts). Checked
 * against the gateway's own body builders (src/api/result-bodies.ts): for the same stored records, the page cut by
 * the CLI equals the NDJSON stream byte for byte, pretty-printed records, strings full of brackets, commas, quotes,
 * escapes and non-ASCII included.
 */
import fc from 'fast-check'
import t from 'tap'
import { jsonPage, ndjsonChunks } from '../../src/api/result-bodies.js'
import type { RecordBatch } from '../../src/domain/results.js'
import { pageRecords } from '../../src/cli/page-records.js'

/** A batch as the database hands it over: framing bytes, then the records side by side, a line feed after each. */
function batch (records: string[]): RecordBatch {
  const framing = Buffer.alloc(64, 0x20)
  const parts = [framing]
  const starts: number[] = []
  const ends: number[] = []
  let at = framing.length
  for (const r of records) {
    const bytes = Buffer.from(r)
    starts.push(at)
    ends.push(at + bytes.length)
    parts.push(bytes, Buffer.from('\n'))
    at += bytes.length + 1
  }
  const plain = records.every(r => !/[\r\n]/.test(r))
  return {
    data: Buffer.concat(parts),
    starts,
    ends,
    pages: records.map(() => 1),
    positions: records.map((_, i) => i),
    runs: records.length === 0 ? [] : [{ first: 0, count: records.length, plain }],
    more: false,
  }
}

const gatewayNdjson = (records: string[]): Buffer => Buffer.concat(ndjsonChunks(batch(records)))
const cut = (records: string[], cursor: string | null = null, total = records.length) => pageRecords(jsonPage(batch(records), records.length, cursor, total))

t.test('records with every JSON hazard come out as the gateway\'s NDJSON', async t => {
  const records = [
    '{"id":1,"name":"plain"}',
    '{"s":"a \\"quoted\\" ], {comma}, [bracket] \\\\ back\\\\slash\\\\","n":[1,[2,{"x":[]}]]}',
    JSON.stringify({ pretty: { nested: ['a', 'b'] }, é: 'ünïcødé ☃ 😀' }, null, 2),
    '{\r\n  "crlf": true\r\n}',
    '{"escaped":"line\\nbreak\\r\\u2028"}',
  ]
  const page = cut(records, 'WzEsNF0', 42)
  t.equal(page.count, records.length)
  t.equal(page.nextCursor, 'WzEsNF0')
  t.equal(page.total, 42)
  t.same(page.ndjson, gatewayNdjson(records), 'byte for byte the NDJSON stream')
  t.equal(page.ndjson.toString().split('\n').length, records.length + 1, 'one line per record')
})

t.test('an empty page, a single record, and partial pages', async t => {
  const empty = cut([])
  t.equal(empty.count, 0)
  t.equal(empty.ndjson.length, 0)
  t.equal(empty.nextCursor, null)
  const one = cut(['{"a":1}'])
  t.equal(one.ndjson.toString(), '{"a":1}\n')
  const partial = pageRecords(jsonPage(batch(['{"a":1}']), 1, 'WzAsLTFd', 1, false))
  t.equal(partial.complete, false)
})

t.test('anything but the gateway\'s envelope is refused', async t => {
  t.throws(() => pageRecords(Buffer.from('[{"a":1}]')), /does not begin/)
  t.throws(() => pageRecords(Buffer.from('{"data":[{"a":"x')), /inside a string/)
  t.throws(() => pageRecords(Buffer.from('{"data":[{"a":1}')), /inside its data/)
  t.throws(() => pageRecords(Buffer.from('{"data":[{"a":1},,{"b":2}],"nextCursor":null,"total":2}')), /empty record/)
})

t.test('property: any records, any page', async t => {
  const value = fc.jsonValue({ maxDepth: 3 })
  const record = fc.tuple(fc.dictionary(fc.string(), value, { maxKeys: 5 }), fc.constantFrom(undefined, 1, 2, '\t', '\r\n'))
    .map(([o, indent]) => indent === '\r\n' ? JSON.stringify(o, null, 1).replace(/\n/g, '\r\n') : JSON.stringify(o, null, indent))
  fc.assert(fc.property(fc.array(record, { maxLength: 20 }), records => {
    const page = cut(records, records.length > 0 ? 'Wz' : null)
    return page.count === records.length && page.ndjson.equals(gatewayNdjson(records))
  }), { numRuns: 300 })
  t.pass('300 pages cut as the gateway streams them')
})
