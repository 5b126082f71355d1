/**
 * Byte-level JSON lexing, the one lexer of the gateway's two JSON scanners: the whole-body record cutter
 * (json-records.ts) and OCL's streaming export scanner (ocl/export-json.ts). The structural bytes, character
 * classes, literals and the number grammar, each as a small pure function so the scanners' loops stay readable.
 * JSON's structure is all ASCII, so bytes ≥ 0x80 can only ever appear inside strings.
 */

export const QUOTE = 0x22
export const BACKSLASH = 0x5c
export const COMMA = 0x2c
export const COLON = 0x3a
export const OPEN_BRACE = 0x7b
export const CLOSE_BRACE = 0x7d
export const OPEN_BRACKET = 0x5b
export const CLOSE_BRACKET = 0x5d
export const MINUS = 0x2d
export const ZERO = 0x30
export const U = 0x75
export const BOM_BYTES: readonly number[] = [0xef, 0xbb, 0xbf]

/** `true`, `false` and `null` by their first byte. */
export const LITERALS: Readonly<Record<number, Buffer>> = { 0x74: Buffer.from('true'), 0x66: Buffer.from('false'), 0x6e: Buffer.from('null') }

/** The bytes that may follow a backslash, \u aside: " \ / b f n r t. */
const ESCAPES = new Set([QUOTE, BACKSLASH, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74])

export const isWhitespace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
export const isDigit = (c: number): boolean => c >= ZERO && c <= 0x39
export const isHex = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
export const isEscape = (c: number): boolean => ESCAPES.has(c)

// -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)? as states: after '-', after a leading 0, in the integer, after '.',
// in the fraction, after e, after the exponent's sign, in the exponent.
const N_SIGN = 0; const N_ZERO = 1; const N_INT = 2; const N_DOT = 3; const N_FRAC = 4; const N_E = 5; const N_ESIGN = 6; const N_EXP = 7
/** {@link numberStep}: the byte ends a complete number (re-read it as what follows). */
export const NUMBER_DONE = -1
/** {@link numberStep}: the byte cannot continue the number. */
export const NUMBER_BAD = -2

/** The state after a number's first byte (`-` or a digit). */
export function numberStart (c: number): number {
  return c === MINUS ? N_SIGN : c === ZERO ? N_ZERO : N_INT
}

/** The state after byte `c` within a number in state `state`, or NUMBER_DONE / NUMBER_BAD. */
export function numberStep (state: number, c: number): number {
  const digit = isDigit(c)
  switch (state) {
    case N_SIGN: return digit ? numberStart(c) : NUMBER_BAD
    case N_DOT: return digit ? N_FRAC : NUMBER_BAD
    case N_ESIGN: return digit ? N_EXP : NUMBER_BAD
    case N_E: return c === 0x2b || c === MINUS ? N_ESIGN : digit ? N_EXP : NUMBER_BAD
    default: // complete so far: N_ZERO, N_INT, N_FRAC, N_EXP
      if (digit && state !== N_ZERO) return state
      if (c === 0x2e && (state === N_ZERO || state === N_INT)) return N_DOT
      if ((c === 0x65 || c === 0x45) && state !== N_EXP) return N_E
      return NUMBER_DONE
  }
}

/** A string's text from its raw bytes, quotes included; escapes are rare, so JSON.parse only for them. */
export function stringText (raw: Buffer): string {
  return raw.includes(BACKSLASH) ? JSON.parse(raw.toString('utf8')) as string : raw.toString('utf8', 1, raw.length - 1)
}

/**
 * The string value of key `name` among an object's own keys, noted while scanning it as offsets into `bytes`:
 * [keyStart, keyEnd, valueStart, valueEnd] per key, valueStart -1 when the value is not a string. Null when
 * the key is absent or not a string; as with JSON.parse, the last occurrence wins.
 */
export function ownString (bytes: Buffer, pairs: readonly number[], name: string): string | null {
  const quoted = Buffer.from(JSON.stringify(name))
  let value: string | null = null
  for (let p = 0; p + 3 < pairs.length; p += 4) {
    const key = bytes.subarray(pairs[p], pairs[p + 1])
    if (!key.equals(quoted) && !(key.includes(BACKSLASH) && stringText(key) === name)) continue
    const from = pairs[p + 2] as number
    value = from < 0 ? null : stringText(bytes.subarray(from, pairs[p + 3]))
  }
  return value
}
