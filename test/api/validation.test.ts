import t from 'tap'
import { findUnstorableString, jsonPointer } from '../../src/api/validation.js'

t.test('jsonPointer escapes ~ and / inside keys (RFC 6901)', async t => {
  t.equal(jsonPointer([]), '')
  t.equal(jsonPointer(['params', 'since']), '/params/since')
  t.equal(jsonPointer(['operations', 3, 'data']), '/operations/3/data')
  t.equal(jsonPointer(['metadata', 'a/b', '~x']), '/metadata/a~1b/~0x')
})

t.test('findUnstorableString: NUL and unpaired surrogates, in values and keys', async t => {
  t.equal(findUnstorableString({ a: 'fine', b: ['é', '😀', '\u2028'] }), null, 'paired surrogates and other text are fine')
  t.same(findUnstorableString({ a: { b: 'x\u0000y' } }), ['a', 'b'])
  t.same(findUnstorableString({ list: ['ok', '\ud800'] }), ['list', 1], 'a lone high surrogate')
  t.same(findUnstorableString(['a\udfffb']), [0], 'a lone low surrogate')
  t.same(findUnstorableString({ 'k\u0000': 1 }), ['k\u0000'], 'in a key')
  t.equal(findUnstorableString(42), null)
})
