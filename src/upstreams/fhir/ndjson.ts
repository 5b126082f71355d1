/**
 * Cuts an NDJSON download into its lines as the bytes arrive, whatever the chunk boundaries, and checks each line is
 * one JSON object. A line is kept as the server's bytes (only invalid UTF-8 is repaired to U+FFFD, as everywhere in
 * the gateway), so a stored record is byte-identical to the line. Pure.
 */
import { isUtf8 } from 'node:buffer'
import { UpstreamError } from '../../domain/errors.js'
import { tooLarge } from '../../contract/record-limits.js'
import { checkObject } from '../json-records.js'

const NEWLINE = 0x0a
const CR = 0x0d

/** Whether a line holds only whitespace (a blank line between records, or at the end). */
function blank (line: Buffer): boolean {
  for (const c of line) if (c !== 0x20 && c !== 0x09 && c !== CR) return false
  return true
}

/** Splits NDJSON bytes into lines; `push` each chunk, then `end()`. */
export class NdjsonLines {
  #rest: Buffer[] = []
  #restBytes = 0
  /** Lines handed out so far (blank ones not counted): the position of the next one in the file. */
  lines = 0

  constructor (private readonly what: string, private readonly maxLineBytes: number) {}

  /** The complete lines in this chunk (with what was left of the previous ones), checked. */
  push (chunk: Buffer): Buffer[] {
    const out: Buffer[] = []
    let from = 0
    for (let at = chunk.indexOf(NEWLINE); at >= 0; at = chunk.indexOf(NEWLINE, from)) {
      const piece = chunk.subarray(from, at)
      const line = this.#restBytes === 0 ? piece : Buffer.concat([...this.#rest, piece], this.#restBytes + piece.length)
      this.#rest = []
      this.#restBytes = 0
      this.#take(line, out)
      from = at + 1
    }
    if (from < chunk.length) {
      // Copied: the chunk's memory may be reused by the stream once this returns.
      const tail = Buffer.from(chunk.subarray(from))
      this.#restBytes += tail.length
      if (this.#restBytes > this.maxLineBytes) throw tooLarge(`A line of ${this.what}`, this.maxLineBytes, 'UPSTREAM_MAX_RECORD_BYTES')
      this.#rest.push(tail)
    }
    return out
  }

  /** The last line, when the file does not end with a newline. */
  end (): Buffer[] {
    const out: Buffer[] = []
    if (this.#restBytes > 0) this.#take(Buffer.concat(this.#rest, this.#restBytes), out)
    this.#rest = []
    this.#restBytes = 0
    return out
  }

  #take (raw: Buffer, out: Buffer[]): void {
    if (blank(raw)) return
    let line = raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw
    if (line.length > this.maxLineBytes) throw tooLarge(`A line of ${this.what}`, this.maxLineBytes, 'UPSTREAM_MAX_RECORD_BYTES')
    if (!isUtf8(line)) line = Buffer.from(line.toString('utf8'), 'utf8')
    try {
      // One validating pass over the bytes; nothing is built or decoded.
      checkObject(line)
    } catch {
      // The line number only: the line itself may be patient data.
      throw new UpstreamError('invalid_upstream_response', `${this.what}: line ${this.lines + 1} is not one JSON object`)
    }
    this.lines++
    out.push(line)
  }
}
