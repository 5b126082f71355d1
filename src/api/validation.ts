/**
 * Request validation with the routes' zod schemas, answering every failure with the JSON pointer of the field.
 * Beyond the schema, no string may carry what PostgreSQL cannot store (NUL, or a lone UTF-16 surrogate, which
 * has no UTF-8 form): such a value is the client's error, a 400 naming the field, never a failed insert.
 */
import type { FastifySchemaCompiler } from 'fastify'
import type { z } from 'zod'

export interface ValidationIssue { keyword: string, instancePath: string, schemaPath: string, message: string, params: Record<string, unknown> }

/** RFC 6901: `~` and `/` inside a key are escaped. */
export function jsonPointer (path: ReadonlyArray<PropertyKey>): string {
  return path.map(key => '/' + String(key).replaceAll('~', '~0').replaceAll('/', '~1')).join('')
}

// eslint-disable-next-line no-control-regex
const unstorable = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** The path of the first string (value or key) PostgreSQL cannot store, or null. */
export function findUnstorableString (value: unknown): PropertyKey[] | null {
  if (typeof value === 'string') return unstorable.test(value) ? [] : null
  if (value === null || typeof value !== 'object') return null
  // The path is built on the way back from a find only: large bodies (100 000 Clinia operations) pass through
  // here on every POST /jobs, and almost never hold such a string.
  for (const [key, item] of Object.entries(value)) {
    const at = Array.isArray(value) ? Number(key) : key
    if (unstorable.test(key)) return [at]
    const found = findUnstorableString(item)
    if (found !== null) return [at, ...found]
  }
  return null
}

const issue = (path: ReadonlyArray<PropertyKey>, keyword: string, message: string): ValidationIssue =>
  ({ keyword, instancePath: jsonPointer(path), schemaPath: '', message, params: {} })

export const validatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => data => {
  const result = schema.safeParse(data)
  if (!result.success) {
    return { error: result.error.issues.map(i => issue(i.path, i.code, i.message)) as unknown as Error }
  }
  // Path parameters are names looked up, never stored: one that matches nothing is a 404 (docs/API.md).
  const bad = httpPart === 'params' ? null : findUnstorableString(result.data)
  if (bad !== null) {
    return { error: [issue(bad, 'unstorable', 'contains a NUL character or an unpaired UTF-16 surrogate')] as unknown as Error }
  }
  return { value: result.data }
}
