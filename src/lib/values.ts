/** Small checks on values read from outside (upstream JSON, error objects, dates in params), one of each. */

/** A plain JSON object (not null, not an array). */
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** The first string `code` on an error or its causes (Node's and undici's network errors wrap each other). */
export function errorCode (err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
  }
  return undefined
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/

/** A real calendar day in YYYY-MM-DD (2024-02-30 is not). */
export function isDay (value: string): boolean {
  const m = DAY.exec(value)
  if (!m) return false
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])))
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3])
}

// ISO 8601 datetime with optional seconds, fraction and offset: what Django (DrChrono, OCL) accepts.
const DATETIME = /^(\d{4}-\d{2}-\d{2})T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$/

/**
 * A day (YYYY-MM-DD, read as UTC midnight) or an ISO 8601 datetime (without an offset read as UTC) as epoch ms, or
 * null when it is neither. How DrChrono's `since` and OCL's `updatedSince` are checked and simulated.
 */
export function parseInstant (value: string): number | null {
  if (isDay(value)) return Date.parse(`${value}T00:00:00Z`)
  const m = DATETIME.exec(value)
  if (!m || !isDay(m[1] as string)) return null
  const at = Date.parse(m[4] === undefined ? `${value}Z` : value)
  return Number.isFinite(at) ? at : null
}
