/**
 * How long to wait before asking a FHIR server again, from its `Retry-After`. Bulk servers are known for absurd
 * values: hours on a status poll, and the SMART reference server's 429 names an absolute epoch (milliseconds on
 * the request that trips its limiter, seconds on the ones after), never delta-seconds. Pure: the clock is an argument.
 */
import { parseRetryAfter } from '../retry-after.js'

/** A number this large cannot be a delay in seconds anyone means (31 years): it is read as an epoch. */
const EPOCH_SECONDS_FROM = 1e9
/** …and from here on as an epoch in milliseconds (1e12 ms is 2001; 1e12 s is year 33 658). */
const EPOCH_MS_FROM = 1e12
/** An epoch further ahead than this is not a sane "come back then": it is clamped like any absurd wait. */
export const EPOCH_WINDOW_MS = 24 * 3_600_000

/** The clamp of every wait. */
export interface WaitBounds { minMs: number, maxMs: number }

/** A wait, and how it was read: whether it was cut to the bounds (worth a log line, once). */
export interface Wait {
  ms: number
  /** What the header held: delay-seconds, an HTTP date, an epoch (ms or s), or nothing usable. */
  form: 'seconds' | 'date' | 'epoch-ms' | 'epoch-s' | 'none'
  /** The wait asked for was outside the bounds (null when none was asked for). */
  clamped: 'up' | 'down' | null
}

const clamp = (ms: number, b: WaitBounds): { ms: number, clamped: Wait['clamped'] } =>
  ms < b.minMs ? { ms: b.minMs, clamped: 'up' } : ms > b.maxMs ? { ms: b.maxMs, clamped: 'down' } : { ms, clamped: null }

/**
 * The wait `value` (a Retry-After header) asks for at `now`, within `bounds`. Without a usable value the wait is
 * `fallbackMs` (clamped too) and not reported as clamped.
 */
export function retryWait (value: string | undefined, now: number, bounds: WaitBounds, fallbackMs: number = bounds.minMs): Wait {
  const number = value !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : null
  if (number !== null && number >= EPOCH_SECONDS_FROM) {
    const epochMs = number >= EPOCH_MS_FROM ? number : number * 1000
    const form = number >= EPOCH_MS_FROM ? 'epoch-ms' : 'epoch-s'
    // An epoch just past (clocks differ) means "now"; one too far ahead is no epoch anyone meant: clamp it.
    const ahead = epochMs - now
    if (ahead <= EPOCH_WINDOW_MS) return { form, ...clamp(Math.max(0, ahead), bounds) }
    return { form: 'seconds', ...clamp(number * 1000, bounds) }
  }
  const asked = parseRetryAfter(value, now)
  if (asked === undefined) return { form: 'none', ms: clamp(fallbackMs, bounds).ms, clamped: null }
  return { form: number === null ? 'date' : 'seconds', ...clamp(asked, bounds) }
}

/** X-Progress as safe to show: printable ASCII, cut short (it is the server's free text). */
export function progressNote (value: string | undefined): string | null {
  if (value === undefined) return null
  const text = value.replace(/[^\x20-\x7e]/g, '').trim().slice(0, 60)
  return text === '' ? null : text
}
