/** The API's opaque cursors (results pages, job lists): base64url JSON, checked against a schema when read back. */
import type { z } from 'zod'

/** A cursor for `value`. */
export function encodeCursor (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** The value a cursor carries, or null when it does not decode to the schema: the client's error (400). */
export function decodeCursor<T> (cursor: string, schema: z.ZodType<T>): T | null {
  try {
    const parsed = schema.safeParse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')))
    return parsed.success ? parsed.data : null
  } catch {
    return null
  }
}
