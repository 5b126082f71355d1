/**
 * An incremental scanner for OCL's export.json: fed the file in chunks of any size, it hands back the raw
 * text of each element of the top-level `concepts` and `mappings` arrays, in file order, with the element's
 * own top-level `type`. Everything else in the file (the version's fields) is validated and dropped.
 *
 * Why not JSON.parse or json-records.ts: exports run to hundreds of MB, so neither the file nor its records
 * may be held at once, and records are stored as OCL wrote them (no parse / stringify round trip). Like
 * json-records.ts it is a byte-level state machine with an explicit stack (no recursion, no regexes); only
 * the bytes of the element being read are kept, and an element past `maxRecordBytes` is refused.
 */
import { UpstreamError } from '../../domain/errors.js'
import { tooLarge } from '../../contract/record-limits.js'
import {
  BACKSLASH, BOM_BYTES, CLOSE_BRACE, CLOSE_BRACKET, COLON, COMMA, LITERALS, MINUS, NUMBER_BAD, NUMBER_DONE, OPEN_BRACE,
  OPEN_BRACKET, QUOTE, U, isDigit, isEscape, isHex, isWhitespace, numberStart, numberStep, ownString, stringText,
} from '../json-bytes.js'

/** The top-level arrays whose elements are records. */
export type ExportArray = 'concepts' | 'mappings'

/** One record of the export, as the file wrote it. */
export interface ExportElement {
  array: ExportArray
  /** The element's JSON text, byte for byte (decoded as UTF-8). */
  text: string
  /** The element's own `type` when it is a string (OCL writes "Concept" / "Mapping"); null otherwise. */
  type: string | null
  /** Its size in the file (UTF-8 bytes). */
  bytes: number
}

const OBJ = 1; const ARR = 2
// Parser states. Up to END they are between tokens, where whitespace is skipped.
const START = 0; const VALUE = 1; const VALUE_OR_CLOSE = 2; const KEY = 3; const KEY_OR_CLOSE = 4; const COLON_NEXT = 5
const AFTER = 6; const END = 7; const BOM = 8; const STRING = 9; const ESCAPE = 10; const HEX = 11; const NUMBER = 12
const LITERAL = 13

/** A top-level key longer than this is not one we look for: its bytes are not kept. */
const MAX_KEY_BYTES = 64
const invalid = (message: string): UpstreamError => new UpstreamError('invalid_upstream_response', `OCL export.json ${message}`)

/** Options of an {@link ExportJsonScanner}. */
export interface ExportJsonScannerOptions {
  /** The largest record accepted, in bytes (default 64 MiB): the one thing the scanner holds in memory. */
  maxRecordBytes?: number
  /** The deepest nesting accepted (default 512); a hostile file must not grow the stack without bound. */
  maxDepth?: number
}

/** Feed it with {@link write}, then call {@link end}; both throw `invalid_upstream_response` on a bad file. */
export class ExportJsonScanner {
  private readonly maxRecordBytes: number
  private readonly maxDepth: number
  private readonly decoder = new TextDecoder('utf-8', { fatal: true })
  private readonly stack: number[] = []
  private state = START
  private offset = 0 // bytes of earlier chunks, for error positions
  private isKey = false // whether the current string is an object key
  private num = 0 // the number's state, see numberStep
  private literal: Buffer = LITERALS[0x74] as Buffer
  private literalAt = 0
  private hexLeft = 0
  private bomAt = 0
  // The top-level key being read (its raw bytes, quotes included) and the last one read.
  private keyParts: Buffer[] | null = null
  private keyStart = 0
  private topKey: string | null = null
  private readonly seen = new Set<ExportArray>()
  private target: ExportArray | null = null // the array being read, while inside it
  // The element being read: earlier chunks' bytes, where it starts in this chunk, and its own keys.
  private capturing = false
  private parts: Buffer[] = []
  private partBytes = 0
  private start = 0
  private readonly pairs: number[] = [] // [keyStart, keyEnd, valueStart, valueEnd] per short key; -1 = not a string
  private pairKey = -1 // index in `pairs` of the key whose value comes next, or -1

  constructor (options: ExportJsonScannerOptions = {}) {
    this.maxRecordBytes = options.maxRecordBytes ?? 64 * 1024 * 1024
    this.maxDepth = options.maxDepth ?? 512
  }

  /** Scans one chunk; returns the elements that ended in it, in order. */
  write (chunk: Buffer): ExportElement[] {
    const out: ExportElement[] = []
    const n = chunk.length
    let i = 0
    while (i < n) {
      const c = chunk[i] as number
      if (this.state <= END && isWhitespace(c)) { i++; continue }
      switch (this.state) {
        case START:
          if (c === BOM_BYTES[0] && this.offset + i === 0) { this.state = BOM; this.bomAt = 1; i++; break }
          if (c !== OPEN_BRACE) throw invalid('is not a JSON object')
          this.push(OBJ, i)
          this.state = KEY_OR_CLOSE
          i++
          break
        case BOM:
          if (c !== BOM_BYTES[this.bomAt]) this.malformed(i)
          if (++this.bomAt === BOM_BYTES.length) this.state = START
          i++
          break
        case VALUE:
        case VALUE_OR_CLOSE:
          if (c === CLOSE_BRACKET && this.state === VALUE_OR_CLOSE) { i = this.close(ARR, chunk, i, out); break }
          i = this.beginValue(c, i)
          break
        case KEY:
        case KEY_OR_CLOSE:
          if (c === CLOSE_BRACE && this.state === KEY_OR_CLOSE) { i = this.close(OBJ, chunk, i, out); break }
          if (c !== QUOTE) this.malformed(i)
          this.beginKey(i)
          i++
          break
        case COLON_NEXT:
          if (c !== COLON) this.malformed(i)
          this.state = VALUE
          i++
          break
        case AFTER:
          if (c === COMMA) { this.state = this.stack[this.stack.length - 1] === OBJ ? KEY : VALUE; i++; break }
          if (c === CLOSE_BRACE) { i = this.close(OBJ, chunk, i, out); break }
          if (c === CLOSE_BRACKET) { i = this.close(ARR, chunk, i, out); break }
          this.malformed(i)
          break
        case STRING: {
          // The hot loop: most of an export is string content.
          let j = i
          let d = c
          while (d !== QUOTE && d !== BACKSLASH && d >= 0x20) {
            if (++j === n) break
            d = chunk[j] as number
          }
          if (j === n) { i = n; break }
          if (d === QUOTE) { this.endString(chunk, j); i = j + 1; break }
          if (d === BACKSLASH) { this.state = ESCAPE; i = j + 1; break }
          this.malformed(j) // a raw control character
          break
        }
        case ESCAPE:
          if (c === U) { this.state = HEX; this.hexLeft = 4 } else if (isEscape(c)) this.state = STRING
          else this.malformed(i)
          i++
          break
        case HEX:
          if (!isHex(c)) this.malformed(i)
          if (--this.hexLeft === 0) this.state = STRING
          i++
          break
        case NUMBER: {
          const next = numberStep(this.num, c)
          if (next === NUMBER_BAD) this.malformed(i)
          if (next === NUMBER_DONE) { this.state = AFTER; break } // `c` follows the number: read it again
          this.num = next
          i++
          break
        }
        case LITERAL:
          if (c !== this.literal[this.literalAt]) this.malformed(i)
          if (++this.literalAt === this.literal.length) this.state = AFTER
          i++
          break
        default: // END: only whitespace may follow the top-level object
          this.malformed(i)
      }
    }
    this.carry(chunk)
    this.offset += n
    return out
  }

  /** Checks that the file is complete and held both arrays. */
  end (): void {
    if (this.state !== END) throw invalid(`ends early (after ${this.offset} bytes)`)
    for (const array of ['concepts', 'mappings'] as const) {
      if (!this.seen.has(array)) throw invalid(`has no "${array}" array`)
    }
  }

  /** Refused while it is read: its bytes so far are all that was ever held of it. */
  private recordTooLarge (): UpstreamError {
    return tooLarge('OCL export.json has a record that', this.maxRecordBytes, 'UPSTREAM_MAX_RECORD_BYTES')
  }

  private malformed (i: number): never {
    // The position only: never the content.
    throw invalid(`is not valid JSON (at byte ${this.offset + i})`)
  }

  /** The position of chunk index `i` within the element being read. */
  private pos (i: number): number {
    return this.partBytes + (i - this.start)
  }

  private push (kind: number, i: number): void {
    if (this.stack.length >= this.maxDepth) throw invalid(`nests deeper than ${this.maxDepth} levels (at byte ${this.offset + i})`)
    this.stack.push(kind)
  }

  private beginKey (i: number): void {
    this.isKey = true
    this.state = STRING
    const depth = this.stack.length
    if (depth === 1) {
      this.keyParts = []
      this.keyStart = i
    } else if (depth === 3 && this.capturing) {
      this.pairs.push(this.pos(i), -1, -1, -1)
      this.pairKey = this.pairs.length - 4
    }
  }

  private beginValue (c: number, i: number): number {
    const depth = this.stack.length
    if (depth === 1) {
      const key = this.topKey
      if (key === 'concepts' || key === 'mappings') {
        if (this.seen.has(key)) throw invalid(`has "${key}" twice`)
        if (c !== OPEN_BRACKET) throw invalid(`has a "${key}" that is not an array`)
        this.seen.add(key)
        this.target = key
      }
    } else if (depth === 2 && this.target !== null) {
      if (c !== OPEN_BRACE) throw invalid(`has an element of "${this.target}" that is not an object`)
      this.capturing = true
      this.start = i
      this.parts = []
      this.partBytes = 0
      this.pairs.length = 0
      this.pairKey = -1
    } else if (depth === 3 && this.pairKey >= 0) {
      if (c === QUOTE) this.pairs[this.pairKey + 2] = this.pos(i)
      else this.pairKey = -1 // not a string: `type` stays unset (-1) for this key
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      this.push(c === OPEN_BRACE ? OBJ : ARR, i)
      this.state = c === OPEN_BRACE ? KEY_OR_CLOSE : VALUE_OR_CLOSE
    } else if (c === QUOTE) {
      this.isKey = false
      this.state = STRING
    } else if (c === MINUS || isDigit(c)) {
      this.num = numberStart(c)
      this.state = NUMBER
    } else {
      const literal = LITERALS[c]
      if (literal === undefined) this.malformed(i)
      this.literal = literal
      this.literalAt = 1
      this.state = LITERAL
    }
    return i + 1
  }

  /** `i` at the closing quote of a string. */
  private endString (chunk: Buffer, i: number): void {
    const depth = this.stack.length
    if (this.isKey) {
      if (depth === 1) this.topKey = this.readTopKey(chunk, i + 1)
      else if (depth === 3 && this.pairKey >= 0) {
        const keyStart = this.pairs[this.pairKey] as number
        if (this.pos(i + 1) - keyStart > MAX_KEY_BYTES) {
          this.pairs.length = this.pairKey
          this.pairKey = -1
        } else this.pairs[this.pairKey + 1] = this.pos(i + 1)
      }
      this.state = COLON_NEXT
      return
    }
    if (depth === 3 && this.pairKey >= 0) {
      this.pairs[this.pairKey + 3] = this.pos(i + 1)
      this.pairKey = -1
    }
    this.state = AFTER
  }

  private readTopKey (chunk: Buffer, end: number): string | null {
    const parts = this.keyParts ?? []
    this.keyParts = null
    const raw = parts.length === 0 ? chunk.subarray(this.keyStart, end) : Buffer.concat([...parts, chunk.subarray(this.keyStart, end)])
    return raw.length > MAX_KEY_BYTES ? null : stringText(raw)
  }

  /** `i` at a closing bracket; returns the index after it. */
  private close (kind: number, chunk: Buffer, i: number, out: ExportElement[]): number {
    if (this.stack.pop() !== kind) this.malformed(i)
    const depth = this.stack.length
    if (depth === 2 && this.capturing) out.push(this.finishElement(chunk, i + 1))
    else if (depth === 1 && this.target !== null) this.target = null
    this.state = depth === 0 ? END : AFTER
    return i + 1
  }

  private finishElement (chunk: Buffer, end: number): ExportElement {
    const last = chunk.subarray(this.start, end)
    const bytes = this.parts.length === 0 ? last : Buffer.concat([...this.parts, last])
    this.capturing = false
    this.parts = []
    if (bytes.length > this.maxRecordBytes) throw this.recordTooLarge()
    let text: string
    try {
      text = this.decoder.decode(bytes)
    } catch {
      throw invalid(`has a record that is not valid UTF-8 (ending at byte ${this.offset + end})`)
    }
    return { array: this.target as ExportArray, text, type: ownString(bytes, this.pairs, 'type'), bytes: bytes.length }
  }

  /** At the end of a chunk: keeps (copies of) the bytes of an unfinished element or top-level key. */
  private carry (chunk: Buffer): void {
    if (this.capturing) {
      const rest = Buffer.from(chunk.subarray(this.start))
      this.parts.push(rest)
      this.partBytes += rest.length
      this.start = 0
      if (this.partBytes > this.maxRecordBytes) throw this.recordTooLarge()
    }
    if (this.keyParts !== null) {
      // A key past MAX_KEY_BYTES is none we look for: a bounded piece per chunk tells its length well enough.
      this.keyParts.push(Buffer.from(chunk.subarray(this.keyStart, this.keyStart + MAX_KEY_BYTES + 1)))
      this.keyStart = 0
    }
  }
}
