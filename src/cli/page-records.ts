/**
 * Cuts a results page (`{"data":[r1,r2,…],"nextCursor":…,"total":…}`) into its records' bytes without parsing
 * them, and writes them as the gateway's NDJSON writes them: each record's bytes, CR and LF folded into spaces
 * (in JSON a raw line break can only be whitespace between tokens), then a line feed. So a file read page by page
 * is byte for byte the `Accept: application/x-ndjson` stream, and yet can stop and resume at any page's cursor,
 * which the stream cannot.
 */

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const LF = 10
const CR = 13
const SPACE = 32

const HEAD = Buffer.from('{"data":[')

/** A page cut into its records (as NDJSON bytes) and the envelope's other members. */
export interface PageRecords {
  /** The records, each folded onto one line and followed by a line feed. */
  ndjson: Buffer
  count: number
  nextCursor: string | null
  total: number
  complete?: boolean
}

/**
 * Splits a page body. The gateway writes the envelope itself (src/api/result-bodies.ts, `jsonPage`): `{"data":[`,
 * the records as stored with one comma between them, then `],"nextCursor":…}`. Anything else is refused.
 */
export function pageRecords (body: Buffer): PageRecords {
  if (!body.subarray(0, HEAD.length).equals(HEAD)) throw new Error('a results page does not begin with {"data":[')
  const out = Buffer.allocUnsafe(body.length)
  let o = 0
  let count = 0
  let depth = 0
  let inRecord = false
  let i = HEAD.length
  for (; i < body.length; i++) {
    const c = body[i] as number
    if (c === QUOTE) {
      // A string, copied up to its closing quote, escaped characters skipped. It holds no raw line break when it
      // is valid JSON; one that did would be folded by the gateway's NDJSON all the same, and so it is here.
      out[o++] = c
      let j = i + 1
      for (; j < body.length; j++) {
        const d = body[j] as number
        if (d === QUOTE) break
        out[o++] = d === CR || d === LF ? SPACE : d
        if (d === BACKSLASH && j + 1 < body.length) {
          const e = body[++j] as number
          out[o++] = e === CR || e === LF ? SPACE : e
        }
      }
      if (j >= body.length) throw new Error('a results page ends inside a string')
      out[o++] = QUOTE
      i = j
      inRecord = true
      continue
    }
    if (depth === 0 && (c === COMMA || c === CLOSE_BRACKET)) {
      if (!inRecord) {
        if (c === CLOSE_BRACKET && count === 0) break
        throw new Error('a results page holds an empty record')
      }
      out[o++] = LF
      count++
      inRecord = false
      if (c === CLOSE_BRACKET) break
      continue
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--
    out[o++] = c === CR || c === LF ? SPACE : c
    inRecord = true
  }
  if (i >= body.length) throw new Error('a results page ends inside its data')
  // The rest is `,"nextCursor":…,"total":…}`: small, and parsed as the JSON it is.
  const rest = JSON.parse('{' + body.subarray(i + 2).toString('utf8')) as { nextCursor?: unknown, total?: unknown, complete?: unknown }
  if ((typeof rest.nextCursor !== 'string' && rest.nextCursor !== null) || typeof rest.total !== 'number') {
    throw new Error('a results page lacks nextCursor or total')
  }
  const page: PageRecords = { ndjson: out.subarray(0, o), count, nextCursor: rest.nextCursor, total: rest.total }
  if (typeof rest.complete === 'boolean') page.complete = rest.complete
  return page
}
