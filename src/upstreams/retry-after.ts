/** The wait an upstream asks for in `Retry-After`. */

const DELAY_SECONDS = /^\s*(\d+(?:\.\d+)?)\s*$/
// Every HTTP-date form (IMF-fixdate, RFC 850, asctime) names a month or weekday in letters; requiring them
// keeps Date.parse's lenient legacy parser from reading odd values like "12-3" as a date.
const LOOKS_LIKE_DATE = /[a-z]{3}/i

/**
 * The wait a `Retry-After` header asks for, in ms, from either form: delay-seconds ("120") or an HTTP-date
 * ("Wed, 21 Oct 2015 07:28:00 GMT", 0 when already past). Undefined when absent or unusable.
 */
export function parseRetryAfter (value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null) return undefined
  const seconds = DELAY_SECONDS.exec(value)
  if (seconds) return Math.round(Number(seconds[1]) * 1000)
  if (!LOOKS_LIKE_DATE.test(value)) return undefined
  const at = Date.parse(value)
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined
}
