import fc from 'fast-check'
import t from 'tap'
import { ExportJsonScanner, type ExportElement, type ExportJsonScannerOptions } from '../../../src/upstreams/ocl/export-json.js'
import { exportJsonChunks, expectedExport, findSource } from '../../../src/upstreams/ocl/simulator/terminology.js'

/** Feeds `text` in chunks of the given sizes (cycled) and returns every element, after end(). */
function scan (text: string | Buffer, sizes: number[] = [65_536], options?: ExportJsonScannerOptions): ExportElement[] {
  const bytes = typeof text === 'string' ? Buffer.from(text) : text
  const scanner = new ExportJsonScanner(options)
  const out: ExportElement[] = []
  for (let i = 0, k = 0; i < bytes.length; k++) {
    const size = Math.max(1, sizes[k % sizes.length] as number)
    out.push(...scanner.write(bytes.subarray(i, i + size)))
    i += size
  }
  scanner.end()
  return out
}

const doc = '\uFEFF{"id": "v1", "extras": {"concepts": [{"type": "x"}], "mappings": "no"}, "n": -1.5e+3, "ok": [true, false, null],' +
  ' "concepts": [ {"type": "Concept", "id": "1", "names": [{"type": "ConceptName", "name": "Fièvre 🩺 \\"q\\" \\u00e9"}]},' +
  '{"id":"2","\\u0074ype":"Concept","n":[0,-0.5,1E2,{}],"s":"\\\\"} ], "mappings": [{"type": "Mapping", "x": {"type": 1}}], "after": {}}'
const want: ExportElement[] = ([
  { array: 'concepts', text: '{"type": "Concept", "id": "1", "names": [{"type": "ConceptName", "name": "Fièvre 🩺 \\"q\\" \\u00e9"}]}', type: 'Concept' },
  { array: 'concepts', text: '{"id":"2","\\u0074ype":"Concept","n":[0,-0.5,1E2,{}],"s":"\\\\"}', type: 'Concept' },
  { array: 'mappings', text: '{"type": "Mapping", "x": {"type": 1}}', type: 'Mapping' },
] as const).map(e => ({ ...e, bytes: Buffer.byteLength(e.text) }))

t.test('elements come out byte for byte, whatever the chunking', async t => {
  t.same(scan(doc), want, 'one chunk')
  t.same(scan(doc, [1]), want, 'one byte at a time (splits every multi-byte character and escape)')
  const bytes = Buffer.from(doc)
  for (let cut = 1; cut < bytes.length; cut++) {
    const scanner = new ExportJsonScanner()
    const got = [...scanner.write(bytes.subarray(0, cut)), ...scanner.write(bytes.subarray(cut))]
    scanner.end()
    if (JSON.stringify(got) !== JSON.stringify(want)) { t.fail(`split at byte ${cut}`); return }
  }
  t.pass('every two-chunk split')
  t.same(JSON.parse(want[0]!.text), JSON.parse(doc.slice(1)).concepts[0], 'the text is the element itself')
})

t.test('the element\'s own type: last key wins, non-strings and nested types do not count', async t => {
  const one = (element: string) => scan(`{"concepts": [${element}], "mappings": []}`)[0]?.type
  t.equal(one('{"type": "Mapping", "type": "Concept"}'), 'Concept')
  t.equal(one('{"type": "Concept", "type": 5}'), null)
  t.equal(one('{"names": [{"type": "Concept"}]}'), null)
  t.equal(one('{}'), null)
  t.equal(one(`{"${'k'.repeat(100)}": "long keys are skipped", "type": "Concept"}`), 'Concept')
})

t.test('file order is kept, mappings first included', async t => {
  const got = scan('{"mappings": [{"type":"Mapping"}], "concepts": [{"type":"Concept"}]}')
  t.same(got.map(e => e.array), ['mappings', 'concepts'])
  t.same(scan('{"concepts": [], "mappings": []}'), [])
})

t.test('the simulator\'s export, in random chunks, yields exactly the expected records', async t => {
  const source = findSource({}, 'users', 'jdoe', 'ClinicTerms')!
  const text = Buffer.from([...exportJsonChunks({}, source, source.versions[0]!)].join(''))
  const got = scan(text, [7, 1, 300, 4096, 3])
  t.same(got.map(e => e.text), expectedExport({}, { ownerType: 'users', owner: 'jdoe', source: 'ClinicTerms', version: 'v1.0' }))
  t.ok(got.every(e => e.type === (e.array === 'concepts' ? 'Concept' : 'Mapping')))
})

t.test('property: any JSON inside the records survives any chunking', async t => {
  fc.assert(fc.property(
    fc.array(fc.jsonValue(), { maxLength: 5 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 }),
    (values, sizes) => {
      const records = values.map(v => JSON.stringify({ type: 'Concept', v }))
      const text = `{"head": ${JSON.stringify(values)}, "concepts": [${records.join(' , ')}], "mappings": []}`
      const got = scan(text, sizes)
      return JSON.stringify(got.map(e => e.text)) === JSON.stringify(records) && got.every(e => e.type === 'Concept')
    }), { numRuns: 300 })
  t.pass()
})

t.test('malformed and unexpected files fail with invalid_upstream_response, naming no content', async t => {
  const bad: Array<[string, RegExp]> = [
    ['[]', /is not a JSON object/],
    ['{"concepts": {}, "mappings": []}', /"concepts" that is not an array/],
    ['{"concepts": [1], "mappings": []}', /element of "concepts" that is not an object/],
    ['{"concepts": []}', /has no "mappings" array/],
    ['{"concepts": [], "concepts": [], "mappings": []}', /"concepts" twice/],
    ['{"concepts": [], "mappings": [{"type": "Mapping"}', /ends early/],
    ['{"concepts": [], "mappings": []} x', /not valid JSON \(at byte 33\)/],
    ['{"concepts": [], "mappings": [], "a": 01}', /not valid JSON/],
    ['{"concepts": [], "mappings": [], "a": 1.}', /not valid JSON/],
    ['{"concepts": [], "mappings": [], "a": -}', /not valid JSON/],
    ['{"concepts": [], "mappings": [], "a": tru}', /not valid JSON/],
    ['{"concepts": [], "mappings": [], "a": "\\x"}', /not valid JSON/],
    ['{"concepts": [], "mappings": [], "a": "\\u12g4"}', /not valid JSON/],
    ['{"concepts": [], "mappings": [], "a": "tab\there"}', /not valid JSON/],
    ['{"concepts": [], "mappings": [], "a": [1,]}', /not valid JSON/],
    ['{"concepts": [], "mappings": [], "a": {"k" 1}}', /not valid JSON/],
    ['{"concepts": [], "mappings": [], "a": [}', /not valid JSON/],
    ['{"concepts": [], "mappings": [],}', /not valid JSON/],
  ]
  for (const [text, message] of bad) {
    t.throws(() => scan(text, [3]), { code: 'invalid_upstream_response', message }, text)
  }
  const secret = '{"concepts": [{"type": "Concept", "name": "Patient Jane Roe"'
  const err = (() => { try { scan(secret) } catch (e) { return e as Error } })()
  t.match(err, { code: 'invalid_upstream_response' })
  t.notMatch(err?.message, /Jane/, 'no content in messages')
  const utf8 = Buffer.concat([Buffer.from('{"concepts": [{"type": "Concept", "n": "'), Buffer.from([0xc3, 0x28]), Buffer.from('"}], "mappings": []}')])
  t.throws(() => scan(utf8), { code: 'invalid_upstream_response', message: /not valid UTF-8/ })
  const big = `{"concepts": [{"type": "Concept", "pad": "${'x'.repeat(5000)}"}], "mappings": []}`
  t.throws(() => scan(big, [100], { maxRecordBytes: 1000 }), { code: 'upstream_response_too_large', message: /limit of 1000 bytes/ }, 'while it spans chunks')
  t.throws(() => scan(big, [1_000_000], { maxRecordBytes: 1000 }), { code: 'upstream_response_too_large', message: /limit of 1000 bytes/ }, 'within one chunk')
  t.throws(() => scan(`{"a": ${'['.repeat(10_000)}`, [4096]), { message: /nests deeper than 512 levels/ })
})
