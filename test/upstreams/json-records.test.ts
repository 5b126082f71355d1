import t, { type Test } from 'tap'
import { UpstreamError } from '../../src/domain/errors.js'
import type { RecordSpans } from '../../src/contract/adapter.js'
import { recordAt } from '../../src/contract/records.js'
import { checkObject, extractArray, scanObject, splitArray } from '../../src/upstreams/json-records.js'

/** The records of spans, as text. */
const spanTexts = (spans: RecordSpans | undefined): string[] | undefined =>
  spans === undefined ? undefined : Array.from({ length: spans.length }, (_, i) => Buffer.from(recordAt(spans, i)).toString('utf8'))

const invalid = { name: 'UpstreamError', code: 'invalid_upstream_response' }

/** Each slice must parse to what JSON.parse sees in the same place. */
function sameAsParse (t: Test, text: string, key?: string): string[] {
  const parsed: unknown = JSON.parse(text)
  const expected = key === undefined ? parsed : (parsed as Record<string, unknown>)[key]
  const slices = key === undefined ? splitArray(text) : extractArray(text, key)
  t.same(slices.map(s => JSON.parse(s)), expected)
  return slices
}

t.test('extractArray returns each element as written', async t => {
  const body = '{"status":"Complete","pagination":{"count":2,"page":1},"results":[{"id":1,"a":[1,{"b":null}]}, {"id":2,"s":"x"}],"uuid":"u"}'
  t.same(sameAsParse(t, body, 'results'), ['{"id":1,"a":[1,{"b":null}]}', '{"id":2,"s":"x"}'])
  t.same(extractArray('{"patients":[]}', 'patients'), [])
  t.same(extractArray('{"patients":[ ] , "total_entries":0}', 'patients'), [])
})

t.test('int64 ids and number forms survive untouched', async t => {
  const body = '{"patients":[{"id":9007199254740993123,"f":-0.5e+10,"g":0,"h":1E-3}]}'
  t.same(extractArray(body, 'patients'), ['{"id":9007199254740993123,"f":-0.5e+10,"g":0,"h":1E-3}'])
})

t.test('strings with escapes, brackets and unicode', async t => {
  const body = String.raw`{"x":"]}\"","results":["a\"],[{","\\",  "\u00e9\ud83d\ude00 é 😀", "\/\b\f\n\r\t", {"k}":"v]"}]}`
  const slices = sameAsParse(t, body, 'results')
  t.equal(slices.length, 5)
  t.equal(slices[2], '"\\u00e9\\ud83d\\ude00 é 😀"')
})

t.test('whitespace around elements is trimmed, inside kept', async t => {
  const body = ' \n\t{ "results" : [\r\n  { "a" : 1 } ,\n\t[ 1 , 2 ]  , "s p" ,\ttrue,false , null ] \n} \n'
  t.same(sameAsParse(t, body, 'results'), ['{ "a" : 1 }', '[ 1 , 2 ]', '"s p"', 'true', 'false', 'null'])
})

t.test('keys are matched after unescaping; a repeated key keeps the last value like JSON.parse', async t => {
  t.same(sameAsParse(t, '{"res\\u0075lts":[1],"other":[2]}', 'results'), ['1'])
  t.same(sameAsParse(t, '{"a\\"b":[3],"results":[4]}', 'a"b'), ['3'])
  t.same(sameAsParse(t, '{"results":[1],"results":[2,3]}', 'results'), ['2', '3'])
  t.same(extractArray('{"nested":{"results":[9]},"results":[1]}', 'results'), ['1'], 'only the top level counts')
  t.same(extractArray('\ufeff{"results":[1]}', 'results'), ['1'], 'a UTF-8 BOM is skipped')
})

t.test('scanObject: the array cut out, every other member kept as raw text, the last of a repeated key wins', async t => {
  const body = '{ "status" : "Complete", "pagination":{"count":2,"pages":1}, "uuid":"u\\"1", "results":[ {"id":1} , {"id":2}] }'
  const bytes = Buffer.from(body)
  const { members, elements } = scanObject(bytes, 'results')
  t.same(spanTexts(elements), ['{"id":1}', '{"id":2}'], 'spans of the body\'s bytes')
  t.equal(elements?.bytes, bytes, 'of the body itself: nothing is copied')
  t.equal(elements?.length, 2)
  t.same([...members.keys()], ['status', 'pagination', 'uuid'], 'the array is not among the members')
  t.equal(members.get('pagination'), '{"count":2,"pages":1}')
  t.equal(JSON.parse(members.get('uuid') as string), 'u"1')
  t.same(scanObject('{"results":[1],"results":null}', 'results'), { members: new Map([['results', 'null']]), elements: undefined })
  const last = scanObject('{"results":null,"results":[1]}', 'results')
  t.same(last.members, new Map())
  t.same(spanTexts(last.elements), ['1'])
  t.same(scanObject('{"status":"In progress"}', 'results'), { members: new Map([['status', '"In progress"']]), elements: undefined })
  t.throws(() => scanObject('{"status":"Complete","results":[1,}', 'results'), invalid, 'the whole body is validated')
  t.throws(() => scanObject('[1]', 'results'), invalid)
  const bad = Buffer.concat([Buffer.from('{"results":[{"name":"Zo'), Buffer.from([0xeb, 0x22]), Buffer.from('}]}')])
  t.same(spanTexts(scanObject(bad, 'results').elements), ['{"name":"Zo\ufffd"}'], 'bytes that are not UTF-8 become U+FFFD, as decoding did')
  t.same(spanTexts(scanObject(Buffer.from('\ufeff{"results":["é"]}'), 'results').elements), ['"é"'], 'a UTF-8 BOM is skipped')
})

t.test('a huge array grows the scan\'s scratch, which is then given up; scans before and after are intact', async t => {
  const small = scanObject(Buffer.from('{"results":[{"a":1},{"b":2}]}'), 'results')
  const n = 600_000 // more entries than the scratch keeps (2 per element)
  const huge = scanObject(Buffer.from(`{"results":[${'0,'.repeat(n - 1)}7]}`), 'results')
  t.equal(huge.elements?.length, n)
  t.same(spanTexts(huge.elements)?.slice(-2), ['0', '7'])
  t.same(spanTexts(small.elements), ['{"a":1}', '{"b":2}'], 'spans already handed out are their own copy')
  t.same(spanTexts(scanObject(Buffer.from('{"results":[3,4]}'), 'results').elements), ['3', '4'])
  t.same(splitArray(`[${'1,'.repeat(n - 1)}2]`).slice(-1), ['2'], 'views too')
})

t.test('missing key or not an array', async t => {
  t.throws(() => extractArray('{"result":[1]}', 'results'), invalid)
  t.throws(() => extractArray('{"nested":{"results":[1]}}', 'results'), invalid)
  t.throws(() => extractArray('{"results":{"a":1}}', 'results'), invalid)
  t.throws(() => extractArray('{"results":[1],"results":null}', 'results'), invalid)
  t.throws(() => extractArray('[1,2]', 'results'), invalid)
  t.throws(() => extractArray('{}', 'results'), invalid)
})

t.test('splitArray for top-level arrays', async t => {
  t.same(sameAsParse(t, '[{"id":"1","names":[{"n":"a,b"}]},{"id":"2"}]'), ['{"id":"1","names":[{"n":"a,b"}]}', '{"id":"2"}'])
  t.same(splitArray(' [ ] '), [])
  t.throws(() => splitArray('{"a":[1]}'), invalid)
  t.throws(() => splitArray('"text"'), invalid)
})

const malformed = [
  '', ' ', '{', '{"results":[1,2]', '{"results":[1,2}', '{"results":[1,]}', '{"results":[,1]}',
  '{"results":[1 2]}', '{"results":[1]}}', '{"results":[1]} x', '{"results":[1]},', "{'results':[1]}",
  '{results:[1]}', '{"results" [1]}', '{"results":[1],}', '{,"results":[1]}', '{"results":["a]}',
  '{"results":["\\x"]}', '{"results":["\\u12g4"]}', '{"results":["tab\there"]}', '{"results":["a\nb"]}',
  '{"results":[01]}', '{"results":[1.]}', '{"results":[.5]}', '{"results":[-]}', '{"results":[1e]}',
  '{"results":[+1]}', '{"results":[NaN]}', '{"results":[tru]}', '{"results":[nul]}', '{"results":[True]}',
  '{"results":[{"a":1,}]}', '{"results":[{"a"}]}', '{"results":[{"a":}]}', '{"results":[{1:2}]}',
  '{"results":[[1,2]]', '{"results":[1]}\u0000', '{"x":"\\', '{"results":[1]} {"results":[2]}',
]

t.test('malformed JSON throws invalid_upstream_response, like JSON.parse rejects it', async t => {
  for (const text of malformed) {
    t.throws(() => JSON.parse(text), SyntaxError, `JSON.parse rejects ${JSON.stringify(text)}`)
    t.throws(() => extractArray(text, 'results'), invalid, `extractArray rejects ${JSON.stringify(text)}`)
    t.throws(() => splitArray(text), invalid)
  }
  for (const text of ['[', '[1', '[1,]', '[,]', '[1 2]', '[1]]', '[1] 2', '[{"a":1]', '["\\u00"]']) {
    t.throws(() => JSON.parse(text), SyntaxError)
    t.throws(() => splitArray(text), invalid, `splitArray rejects ${JSON.stringify(text)}`)
  }
  const err = t.throws(() => extractArray('{"results":["secret name",]}', 'results')) as unknown
  t.ok(err instanceof UpstreamError)
  t.notMatch((err as Error).message, /secret/, 'no body content in the message')
})

t.test('deep nesting neither overflows the stack nor is refused', async t => {
  const depth = 100_000
  const deep = '{"results":[' + '['.repeat(depth) + ']'.repeat(depth) + ']}'
  t.equal(extractArray(deep, 'results')[0]!.length, depth * 2)
  t.throws(() => extractArray('{"results":[' + '['.repeat(depth) + ']}', 'results'), invalid)
})

t.test('agrees with JSON.parse on generated documents', async t => {
  let seed = 42
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  const gen = (d: number): unknown => {
    const r = rand()
    if (d > 4 || r < 0.3) return [1.25e-7, -3, 'é\u2028"\\/\n', true, null, '😀'][Math.floor(rand() * 6)]
    if (r < 0.65) return Array.from({ length: Math.floor(rand() * 4) }, () => gen(d + 1))
    return Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, (_, i) => [`k${i}"}`, gen(d + 1)]))
  }
  for (let i = 0; i < 200; i++) {
    const results = Array.from({ length: Math.floor(rand() * 5) }, () => gen(0))
    const text = JSON.stringify({ before: gen(1), results, after: gen(1) }, null, i % 2 === 0 ? 2 : undefined)
    const slices = extractArray(text, 'results')
    if (JSON.stringify(slices.map(s => JSON.parse(s))) !== JSON.stringify(results)) t.fail(`document ${i} differs`)
  }
  t.pass('200 documents agree')
})

t.test('a 1 MB body scans quickly', async t => {
  const record = JSON.stringify({ id: '9007199254740993123', first_name: 'Zoë', notes: 'a "quoted" \\ note', tags: [1, 2, { x: null }] })
  const body = '{"results":[' + Array(12_000).fill(record).join(',') + '],"pagination":{"count":12000}}'
  t.ok(body.length > 1_000_000)
  const started = performance.now()
  for (let i = 0; i < 10; i++) t.equal(extractArray(body, 'results').length, 12_000)
  // Generous: about 10 ms per MB is expected; this only catches an accidentally quadratic scanner.
  t.ok(performance.now() - started < 5000, `10 scans took ${Math.round(performance.now() - started)} ms`)
})

t.test('checkObject accepts exactly what JSON.parse reads as one object, and builds nothing to say so', async t => {
  for (const text of ['{}', ' {"a":[1,{"b":"\\u00e9"}],"c":null} ', '\ufeff{"resourceType":"Patient","id":"1"}', '{"k":{"k":{"k":[[]]}}}']) {
    t.doesNotThrow(() => checkObject(Buffer.from(text)), `accepts ${JSON.stringify(text)}`)
  }
  for (const text of [...malformed, '[1]', '"s"', '1', 'null', '{"a":1} {}', '{"a":1}x', '', '{"a":1']) {
    t.throws(() => checkObject(Buffer.from(text)), invalid, `refuses ${JSON.stringify(text)}`)
  }
})
