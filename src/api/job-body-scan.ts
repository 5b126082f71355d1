/**
 * A look at a `POST /jobs` body while it arrives, chunk by chunk, before any of it is parsed: how deep it nests,
 * which upstream its top-level `upstream` member names, and how many of its bytes lie outside a write
 * payload member (`operations`). That is what decides, as early as the bytes allow, whether the body may be
 * read on (job-body.ts): a read job's body is refused at its small limit, not buffered to the write limit,
 * and a body nested 100 000 deep never reaches a parser or a recursive walk.
 *
 * It follows only JSON's lexical rules (strings, escapes, brackets, `:` and `,` at the top level); it does not
 * validate. For valid JSON what it reports is exact; invalid JSON is refused by the parser afterwards.
 */

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const COLON = 0x3a
const COMMA = 0x2c
const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09

/** Keys and upstream names are short; a longer string at those places is neither, and is not kept. */
const MAX_CAPTURE = 256

/** JSON string contents as written (escapes included), or null if they cannot be decoded. */
function decode (bytes: number[]): string | null {
  const text = Buffer.from(bytes).toString('utf8')
  if (!bytes.includes(BACKSLASH)) return text
  try {
    return JSON.parse(`"${text}"`) as string
  } catch {
    return null
  }
}

export class JobBodyScanner {
  /** Bytes seen. */
  bytes = 0
  /** Bytes seen outside the value of a top-level payload member. */
  outsideBytes = 0
  /** The deepest nesting seen (an object or array inside the root object is 2). */
  maxDepth = 0
  /**
   * The top-level `upstream` member: undefined while not seen, null when it is not a string one can read (then
   * the body names no upstream and will fail validation).
   */
  upstream: string | null | undefined = undefined

  private depth = 0
  private inString = false
  private escape = false
  private rootIsObject = false
  private expectKey = false
  /** The top-level member whose value is being read (set at its `:`), or null between members. */
  private member: string | null = null
  private awaitingValue = false
  private capture: number[] | null = null
  private capturing: 'key' | 'upstream' | null = null
  private lastKey: string | null = null

  constructor (private readonly payloadFields: ReadonlySet<string>) {}

  /** Reads a chunk. Stops early, returning false, as soon as the nesting goes beyond `depthLimit`. */
  write (chunk: Uint8Array, depthLimit: number): boolean {
    this.bytes += chunk.length
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number
      if (this.member === null || !this.payloadFields.has(this.member)) this.outsideBytes++
      if (this.inString) {
        if (this.escape) this.escape = false
        else if (b === BACKSLASH) this.escape = true
        else if (b === QUOTE) {
          this.inString = false
          this.endString()
          continue
        }
        if (this.capture !== null && this.capture.length <= MAX_CAPTURE) this.capture.push(b)
        continue
      }
      switch (b) {
        case QUOTE:
          this.inString = true
          this.startString()
          break
        case OPEN_OBJECT:
        case OPEN_ARRAY:
          if (this.depth === 0 && b === OPEN_OBJECT) {
            this.rootIsObject = true
            this.expectKey = true
          } else this.valueStarts(false)
          this.depth++
          if (this.depth > this.maxDepth) this.maxDepth = this.depth
          if (this.depth > depthLimit) return false
          break
        case CLOSE_OBJECT:
        case CLOSE_ARRAY:
          this.depth--
          if (this.depth === 0) this.member = null
          break
        case COLON:
          if (this.depth === 1 && this.rootIsObject) {
            this.member = this.lastKey
            this.awaitingValue = true
          }
          break
        case COMMA:
          if (this.depth === 1 && this.rootIsObject) {
            this.member = null
            this.expectKey = true
          }
          break
        default:
          if (!isSpace(b)) this.valueStarts(false)
      }
    }
    return true
  }

  /** A top-level member's value starts here; `string` says whether it is a string (then it may be captured). */
  private valueStarts (string: boolean): boolean {
    if (this.depth !== 1 || !this.awaitingValue) return false
    this.awaitingValue = false
    if (this.member !== 'upstream') return false
    if (!string) this.upstream = null
    return true
  }

  private startString (): void {
    if (this.depth === 1 && this.rootIsObject && this.expectKey) {
      this.expectKey = false
      this.capturing = 'key'
      this.capture = []
    } else if (this.valueStarts(true)) {
      this.capturing = 'upstream'
      this.capture = []
    }
  }

  private endString (): void {
    if (this.capture === null) return
    const text = this.capture.length > MAX_CAPTURE ? null : decode(this.capture)
    if (this.capturing === 'key') this.lastKey = text
    else this.upstream = text
    this.capture = null
    this.capturing = null
  }
}
