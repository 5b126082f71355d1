/**
 * Cuts the records out of an upstream's JSON body as the upstream wrote them.
 *
 * Results are stored as the upstream's JSON text (see ARCHITECTURE.md), and ids such as Cliniko's int64
 * would be corrupted by a JSON.parse / JSON.stringify round trip. So this is a validating scanner that
 * returns slices of the input: one pass over char codes, an explicit stack instead of recursion (a hostile
 * body nested 100 000 deep must not overflow the call stack), and no regular expressions.
 */
import { UpstreamError } from './types.js'

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39
const BOM = 0xfeff

function malformed (at: number): never {
  // The offset only: the body may hold patient data, so none of it goes into the message.
  throw new UpstreamError('invalid_upstream_response', `Upstream body is not valid JSON (at offset ${at})`)
}

function skipWhitespace (s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i)
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i
    i++
  }
}

function isHex (c: number): boolean {
  return (c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
}

/** `i` at the opening quote; returns the index after the closing quote. */
function scanString (s: string, i: number): number {
  i++
  for (;;) {
    const c = s.charCodeAt(i)
    if (c === QUOTE) return i + 1
    if (c === BACKSLASH) {
      const e = s.charCodeAt(i + 1)
      if (e === 0x75) { // \uXXXX
        if (!(isHex(s.charCodeAt(i + 2)) && isHex(s.charCodeAt(i + 3)) && isHex(s.charCodeAt(i + 4)) && isHex(s.charCodeAt(i + 5)))) malformed(i)
        i += 6
      } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        i += 2
      } else {
        malformed(i)
      }
    } else if (c < 0x20 || Number.isNaN(c)) { // raw control characters are invalid; NaN is the end of input
      malformed(i)
    } else {
      i++
    }
  }
}

function skipDigits (s: string, i: number): number {
  const start = i
  for (let c = s.charCodeAt(i); c >= ZERO && c <= NINE; c = s.charCodeAt(++i));
  if (i === start) malformed(i)
  return i
}

/** -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)? */
function scanNumber (s: string, i: number): number {
  if (s.charCodeAt(i) === MINUS) i++
  if (s.charCodeAt(i) === ZERO) i++
  else i = skipDigits(s, i)
  if (s.charCodeAt(i) === DOT) i = skipDigits(s, i + 1)
  const e = s.charCodeAt(i)
  if (e === 0x65 || e === 0x45) {
    const sign = s.charCodeAt(i + 1)
    i = skipDigits(s, sign === PLUS || sign === MINUS ? i + 2 : i + 1)
  }
  return i
}

function scanLiteral (s: string, i: number, word: string): number {
  if (!s.startsWith(word, i)) malformed(i)
  return i + word.length
}

/** `i` at an object's key (after whitespace); returns the index of its value (after ':' and whitespace). */
function scanKey (s: string, i: number): number {
  if (s.charCodeAt(i) !== QUOTE) malformed(i)
  i = skipWhitespace(s, scanString(s, i))
  if (s.charCodeAt(i) !== COLON) malformed(i)
  return skipWhitespace(s, i + 1)
}

/** `i` at the first character of a value; returns the index just after that value. */
function skipValue (s: string, i: number): number {
  const stack: number[] = [] // open containers: OPEN_BRACE or OPEN_BRACKET
  for (;;) {
    // Expecting a value at i.
    const c = s.charCodeAt(i)
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      const close = c === OPEN_BRACE ? CLOSE_BRACE : CLOSE_BRACKET
      const next = skipWhitespace(s, i + 1)
      if (s.charCodeAt(next) === close) {
        i = next + 1
      } else {
        stack.push(c)
        i = c === OPEN_BRACE ? scanKey(s, next) : next
        continue
      }
    } else if (c === QUOTE) i = scanString(s, i)
    else if (c === MINUS || (c >= ZERO && c <= NINE)) i = scanNumber(s, i)
    else if (c === 0x74) i = scanLiteral(s, i, 'true')
    else if (c === 0x66) i = scanLiteral(s, i, 'false')
    else if (c === 0x6e) i = scanLiteral(s, i, 'null')
    else malformed(i)
    // After a value: close containers until one continues with ',' or the outermost value ends.
    for (;;) {
      const top = stack[stack.length - 1]
      if (top === undefined) return i
      i = skipWhitespace(s, i)
      const d = s.charCodeAt(i)
      if (d === COMMA) {
        const next = skipWhitespace(s, i + 1)
        i = top === OPEN_BRACE ? scanKey(s, next) : next
        break
      }
      if (d !== (top === OPEN_BRACE ? CLOSE_BRACE : CLOSE_BRACKET)) malformed(i)
      stack.pop()
      i++
    }
  }
}

function start (s: string): number {
  return skipWhitespace(s, s.charCodeAt(0) === BOM ? 1 : 0)
}

function expectEnd (s: string, i: number): void {
  i = skipWhitespace(s, i)
  if (i !== s.length) malformed(i)
}

/** `i` at '['; pushes each element's text to `out` and returns the index after ']'. */
function collectElements (s: string, i: number, out: string[]): number {
  i = skipWhitespace(s, i + 1)
  if (s.charCodeAt(i) === CLOSE_BRACKET) return i + 1
  for (;;) {
    const end = skipValue(s, i)
    out.push(s.slice(i, end))
    i = skipWhitespace(s, end)
    const c = s.charCodeAt(i)
    if (c === CLOSE_BRACKET) return i + 1
    if (c !== COMMA) malformed(i)
    i = skipWhitespace(s, i + 1)
  }
}

/** The raw JSON text of each element of a body that is a top-level array (e.g. OCL lists). */
export function splitArray (text: string): string[] {
  const i = start(text)
  if (text.charCodeAt(i) !== OPEN_BRACKET) {
    skipValue(text, i) // a malformed body is reported as such, not as "not an array"
    throw new UpstreamError('invalid_upstream_response', 'Upstream body is not a JSON array')
  }
  const out: string[] = []
  expectEnd(text, collectElements(text, i, out))
  return out
}

/** A top-level JSON object read by {@link scanObject}. */
export interface ScannedObject {
  /** Each member's value as raw JSON text, by unescaped key (a repeated key keeps the last value, as JSON.parse does). */
  members: Map<string, string>
  /** The elements of the array under the scanned key, when its (last) value is an array; that member is then absent from `members`. */
  elements: string[] | undefined
}

/**
 * Reads a body that must be a JSON object in one validating pass: the elements of the array under `arrayKey` are
 * cut out as the upstream wrote them, and every other member is kept as raw text for the caller to parse (they are
 * small: a status, a pagination object). A page of records is then never built into objects at all.
 */
export function scanObject (text: string, arrayKey: string): ScannedObject {
  let i = start(text)
  if (text.charCodeAt(i) !== OPEN_BRACE) {
    skipValue(text, i)
    throw new UpstreamError('invalid_upstream_response', 'Upstream body is not a JSON object')
  }
  const members = new Map<string, string>()
  let elements: string[] | undefined
  i = skipWhitespace(text, i + 1)
  if (text.charCodeAt(i) === CLOSE_BRACE) {
    i++
  } else {
    for (;;) {
      const keyStart = i
      const valueAt = scanKey(text, i)
      // Up to the first quote: with no backslash before it, that quote closes the key and `raw` is the key.
      const raw = text.slice(keyStart + 1, text.indexOf('"', keyStart + 1))
      const key = raw.includes('\\') ? JSON.parse(text.slice(keyStart, scanString(text, keyStart))) as string : raw
      if (key === arrayKey && text.charCodeAt(valueAt) === OPEN_BRACKET) {
        elements = []
        members.delete(key)
        i = collectElements(text, valueAt, elements)
      } else {
        if (key === arrayKey) elements = undefined
        i = skipValue(text, valueAt)
        members.set(key, text.slice(valueAt, i))
      }
      i = skipWhitespace(text, i)
      const c = text.charCodeAt(i)
      if (c === CLOSE_BRACE) { i++; break }
      if (c !== COMMA) malformed(i)
      i = skipWhitespace(text, i + 1)
    }
  }
  expectEnd(text, i)
  return { members, elements }
}

/**
 * The raw JSON text of each element of the array under the top-level key `key`, e.g. Cliniko's `patients`.
 * The whole body is validated; as with JSON.parse, a repeated key's last value wins.
 */
export function extractArray (text: string, key: string): string[] {
  const { members, elements } = scanObject(text, key)
  if (members.has(key)) throw new UpstreamError('invalid_upstream_response', `Upstream body's "${key}" is not an array`)
  if (elements === undefined) throw new UpstreamError('invalid_upstream_response', `Upstream body has no "${key}" array`)
  return elements
}
