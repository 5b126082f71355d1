/**
 * Cuts the records out of an upstream's JSON body as the upstream wrote them.
 *
 * Results are stored as the upstream's JSON text (see docs/ARCHITECTURE.md), and ids such as Cliniko's int64
 * would be corrupted by a JSON.parse / JSON.stringify round trip. So this is a validating scanner that
 * returns slices of the input: one pass over the body's UTF-8 bytes (every JSON token is ASCII, so a
 * multi-byte character can only sit inside a string, where any byte from 0x20 up is allowed), an explicit stack
 * instead of recursion (a hostile body nested 100 000 deep must not overflow the call stack), and no regular
 * expressions. Working on bytes, a page of records is never decoded into JS strings at all.
 */
import { isUtf8 } from 'node:buffer'
import type { RecordSpans } from '../contract/adapter.js'
import { UpstreamError } from '../domain/errors.js'
import {
  BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, COLON, COMMA, isDigit, isEscape, isHex, isWhitespace, MINUS, NUMBER_BAD, NUMBER_DONE,
  numberStart, numberStep, OPEN_BRACE, OPEN_BRACKET, QUOTE, U,
} from './json-bytes.js'

type Bytes = Uint8Array

function malformed (at: number): never {
  // The offset only: the body may hold patient data, so none of it goes into the message.
  throw new UpstreamError('invalid_upstream_response', `Upstream body is not valid JSON (at offset ${at})`)
}

function skipWhitespace (s: Bytes, i: number): number {
  for (let c = s[i]; c !== undefined && isWhitespace(c); c = s[++i]);
  return i
}

const hexAt = (s: Bytes, i: number): boolean => i < s.length && isHex(s[i] as number)

/** `i` at the opening quote; returns the index after the closing quote. */
function scanString (s: Bytes, i: number): number {
  i++
  for (;;) {
    const c = s[i]
    if (c === QUOTE) return i + 1
    if (c === BACKSLASH) {
      const e = s[i + 1]
      if (e === U) { // \uXXXX
        if (!(hexAt(s, i + 2) && hexAt(s, i + 3) && hexAt(s, i + 4) && hexAt(s, i + 5))) malformed(i)
        i += 6
      } else if (e !== undefined && isEscape(e)) {
        i += 2
      } else {
        malformed(i)
      }
    } else if (c === undefined || c < 0x20) { // raw control characters are invalid; undefined is the end of input
      malformed(i)
    } else {
      i++
    }
  }
}

/** -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?, by the lexer's number grammar; `i` at its first byte (- or a digit). */
function scanNumber (s: Bytes, i: number): number {
  let state = numberStart(s[i] as number)
  for (i++; ; i++) {
    // The end of the input ends a number as whitespace would: complete, or malformed.
    const next = numberStep(state, s[i] ?? 0x20)
    if (next === NUMBER_DONE) return i
    if (next === NUMBER_BAD) malformed(i)
    state = next
  }
}

function scanLiteral (s: Bytes, i: number, word: string): number {
  for (let k = 0; k < word.length; k++) if (s[i + k] !== word.charCodeAt(k)) malformed(i)
  return i + word.length
}

/** `i` at an object's key (after whitespace); returns the index of its value (after ':' and whitespace). */
function scanKey (s: Bytes, i: number): number {
  if (s[i] !== QUOTE) malformed(i)
  i = skipWhitespace(s, scanString(s, i))
  if (s[i] !== COLON) malformed(i)
  return skipWhitespace(s, i + 1)
}

/** `i` at the first character of a value; returns the index just after that value. */
function skipValue (s: Bytes, i: number): number {
  const stack: number[] = [] // open containers: OPEN_BRACE or OPEN_BRACKET
  for (;;) {
    // Expecting a value at i.
    const c = s[i]
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      const close = c === OPEN_BRACE ? CLOSE_BRACE : CLOSE_BRACKET
      const next = skipWhitespace(s, i + 1)
      if (s[next] === close) {
        i = next + 1
      } else {
        stack.push(c)
        i = c === OPEN_BRACE ? scanKey(s, next) : next
        continue
      }
    } else if (c === QUOTE) i = scanString(s, i)
    else if (c === MINUS || (c !== undefined && isDigit(c))) i = scanNumber(s, i)
    else if (c === 0x74) i = scanLiteral(s, i, 'true')
    else if (c === 0x66) i = scanLiteral(s, i, 'false')
    else if (c === 0x6e) i = scanLiteral(s, i, 'null')
    else malformed(i)
    // After a value: close containers until one continues with ',' or the outermost value ends.
    for (;;) {
      const top = stack[stack.length - 1]
      if (top === undefined) return i
      i = skipWhitespace(s, i)
      const d = s[i]
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

/** After a UTF-8 byte order mark, if there is one. */
function start (s: Bytes): number {
  return skipWhitespace(s, s[0] === 0xef && s[1] === 0xbb && s[2] === 0xbf ? 3 : 0)
}

function expectEnd (s: Bytes, i: number): void {
  i = skipWhitespace(s, i)
  if (i !== s.length) malformed(i)
}

/** `i` at '['; pushes each element's bytes to `out` and returns the index after ']'. */
/**
 * Where a scan notes its elements' spans, grown as needed and reused by the next scan (scans are synchronous): a
 * page's spans are then one exact-size allocation, made once the page is scanned.
 */
const SCRATCH_ENTRIES = 2 * 1024
/** Past this many entries (4 MB), a grown scratch is dropped after its scan rather than kept for the process's life. */
const SCRATCH_KEPT = 1024 * 1024
let scratch = new Int32Array(SCRATCH_ENTRIES)

/** The elements of an array as spans of the body (contract/adapter.ts, RecordSpans), as they are found. */
class SpanList {
  length = 0

  constructor (readonly bytes: Buffer) {
    // Offsets are int32: a body of 2 GiB or more is past any response limit the gateway can hold anyway.
    if (bytes.length > 0x7fffffff) throw new UpstreamError('upstream_response_too_large', 'Upstream body is 2 GiB or more')
  }

  /** Gives up a scratch that one huge array grew: called once the spans are copied out. */
  #done (): void {
    if (scratch.length > SCRATCH_KEPT) scratch = new Int32Array(SCRATCH_ENTRIES)
  }

  push (start: number, end: number): void {
    const at = 2 * this.length
    if (at === scratch.length) {
      const grown = new Int32Array(scratch.length * 2)
      grown.set(scratch)
      scratch = grown
    }
    scratch[at] = start
    scratch[at + 1] = end
    this.length++
  }

  /** The spans found, in one allocation (starts, then ends). */
  spans (): RecordSpans {
    const n = this.length
    const both = new Int32Array(2 * n)
    for (let i = 0; i < n; i++) {
      both[i] = scratch[2 * i] as number
      both[n + i] = scratch[2 * i + 1] as number
    }
    this.#done()
    return { bytes: this.bytes, starts: both.subarray(0, n), ends: both.subarray(n), length: n }
  }

  /** Each element as a view of the body (for callers that take a few, or want them one by one). */
  views (): Buffer[] {
    const out: Buffer[] = []
    for (let i = 0; i < this.length; i++) out.push(this.bytes.subarray(scratch[2 * i], scratch[2 * i + 1]))
    this.#done()
    return out
  }
}

function collectElements (s: Buffer, i: number, out: SpanList): number {
  i = skipWhitespace(s, i + 1)
  if (s[i] === CLOSE_BRACKET) return i + 1
  for (;;) {
    const end = skipValue(s, i)
    out.push(i, end)
    i = skipWhitespace(s, end)
    const c = s[i]
    if (c === CLOSE_BRACKET) return i + 1
    if (c !== COMMA) malformed(i)
    i = skipWhitespace(s, i + 1)
  }
}

/**
 * The body as bytes that are valid UTF-8. Invalid sequences become U+FFFD, as decoding to a string always did:
 * PostgreSQL refuses text that is not UTF-8, and one bad byte in a name must not fail a whole job.
 */
function utf8Bytes (body: Buffer | string): Buffer {
  if (typeof body === 'string') return Buffer.from(body, 'utf8')
  return isUtf8(body) ? body : Buffer.from(body.toString('utf8'), 'utf8')
}

const texts = (spans: RecordSpans): string[] => {
  const out: string[] = []
  const bytes = Buffer.from(spans.bytes.buffer, spans.bytes.byteOffset, spans.bytes.byteLength)
  for (let i = 0; i < spans.length; i++) out.push(bytes.toString('utf8', spans.starts[i], spans.ends[i]))
  return out
}

/** The raw JSON bytes of each element of a body that is a top-level array (e.g. OCL lists). */
export function splitArrayBytes (body: Buffer | string): Buffer[] {
  const s = utf8Bytes(body)
  const i = start(s)
  if (s[i] !== OPEN_BRACKET) {
    skipValue(s, i) // a malformed body is reported as such, not as "not an array"
    throw new UpstreamError('invalid_upstream_response', 'Upstream body is not a JSON array')
  }
  const out = new SpanList(s)
  expectEnd(s, collectElements(s, i, out))
  return out.views()
}

/** {@link splitArrayBytes}, as text. */
export function splitArray (text: string): string[] {
  return splitArrayBytes(text).map(b => b.toString('utf8'))
}

/** A top-level JSON object read by {@link scanObject}. */
export interface ScannedObject {
  /** Each member's value as raw JSON text, by unescaped key (a repeated key keeps the last value, as JSON.parse does). */
  members: Map<string, string>
  /**
   * The elements (spans of the body's UTF-8 bytes) of the array under the scanned key, when its (last) value is an
   * array; that member is then absent from `members`.
   */
  elements: RecordSpans | undefined
}

/**
 * Reads a body that must be a JSON object in one validating pass: the elements of the array under `arrayKey` are
 * cut out as the upstream wrote them (spans of the body's bytes, no object per element), and every other member is kept as raw text for
 * the caller to parse (they are small: a status, a pagination object). A page of records is then never decoded or
 * built into objects at all.
 */
export function scanObject (body: Buffer | string, arrayKey: string): ScannedObject {
  const s = utf8Bytes(body)
  let i = start(s)
  if (s[i] !== OPEN_BRACE) {
    skipValue(s, i)
    throw new UpstreamError('invalid_upstream_response', 'Upstream body is not a JSON object')
  }
  const members = new Map<string, string>()
  let elements: RecordSpans | undefined
  i = skipWhitespace(s, i + 1)
  if (s[i] === CLOSE_BRACE) {
    i++
  } else {
    for (;;) {
      const keyStart = i
      const valueAt = scanKey(s, i)
      const keyEnd = s.indexOf(QUOTE, keyStart + 1)
      // Up to the first quote: with no backslash before it, that quote closes the key and these bytes are the key.
      const key = s.subarray(keyStart + 1, keyEnd).includes(BACKSLASH)
        ? JSON.parse(s.toString('utf8', keyStart, scanString(s, keyStart))) as string
        : s.toString('utf8', keyStart + 1, keyEnd)
      if (key === arrayKey && s[valueAt] === OPEN_BRACKET) {
        const found = new SpanList(s)
        members.delete(key)
        i = collectElements(s, valueAt, found)
        elements = found.spans()
      } else {
        if (key === arrayKey) elements = undefined
        i = skipValue(s, valueAt)
        members.set(key, s.toString('utf8', valueAt, i))
      }
      i = skipWhitespace(s, i)
      const c = s[i]
      if (c === CLOSE_BRACE) { i++; break }
      if (c !== COMMA) malformed(i)
      i = skipWhitespace(s, i + 1)
    }
  }
  expectEnd(s, i)
  return { members, elements }
}

/**
 * Checks that `body` (UTF-8) is exactly one JSON object, in one pass over its bytes that builds nothing: no member is
 * decoded, as {@link scanObject} decodes them. For records that are stored as they are (a FHIR NDJSON line).
 */
export function checkObject (body: Buffer): void {
  let i = start(body)
  if (body[i] !== OPEN_BRACE) throw new UpstreamError('invalid_upstream_response', 'Upstream body is not a JSON object')
  i = skipValue(body, i)
  expectEnd(body, i)
}

/** A scanned member's value, parsed; undefined when absent. Members other than the array are small. */
export function memberValue (body: ScannedObject, key: string): unknown {
  const raw = body.members.get(key)
  return raw === undefined ? undefined : JSON.parse(raw)
}

/** The elements of the array `scanObject` was asked for; throws when the body has no such array. */
export function arrayElements (body: ScannedObject, key: string): RecordSpans {
  if (body.members.has(key)) throw new UpstreamError('invalid_upstream_response', `Upstream body's "${key}" is not an array`)
  if (body.elements === undefined) throw new UpstreamError('invalid_upstream_response', `Upstream body has no "${key}" array`)
  return body.elements
}

/**
 * The raw JSON text of each element of the array under the top-level key `key`, e.g. Clinia's `receipts`.
 * The whole body is validated; as with JSON.parse, a repeated key's last value wins.
 */
export function extractArray (body: Buffer | string, key: string): string[] {
  return texts(arrayElements(scanObject(body, key), key))
}
