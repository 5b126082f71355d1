/**
 * How long to wait after an OCL 429, read from oclapi2's X-LimitRemaining-Minute / X-LimitRemaining-Day headers.
 * The shared client asks for it only when the 429 has no usable Retry-After: Retry-After (Django REST framework's
 * own, exact) always wins. Which of these headers a real 429 carries is unconfirmed, so each case has its answer:
 *
 * - Day 0: the day's quota is spent. oclapi2 counts it (as DRF does) in a sliding 24 h window, so a request frees
 *   up somewhere within the next day and nothing says when: the wait is the worst case, a day. That is far more
 *   than the client sleeps for (its maxRetryAfterMs), so the job fails at once with upstream_rate_limited rather
 *   than spending twenty retries against a quota that is gone.
 * - Minute 0: the minute's quota is spent: wait until the next minute starts, plus {@link CLOCK_SKEW_MS} for OCL's
 *   clock and ours differing. Against a fixed window that is exact. Against DRF's sliding minute it frees every
 *   request older than a minute by then (most of them, unless they all came in one burst), and should it not be
 *   enough, the next 429 waits for the minute after: about two minutes at worst, where the exponential backoff
 *   would knock every few seconds, each knock refused.
 * - Neither header, one that is not a number (oclapi2 may write "unlimited"), or both above 0 (the 429 came from
 *   something else, say a proxy): no wait is derived and the client backs off exponentially.
 */

/** The gateway's and OCL's clocks may differ by this much: a wait for "the next minute" ends this much later. */
export const CLOCK_SKEW_MS = 1000

const MINUTE_MS = 60_000
const DAY_MS = 24 * 60 * MINUTE_MS

function remaining (value: string | undefined): number | undefined {
  return value !== undefined && /^\s*-?\d+\s*$/.test(value) ? Number(value) : undefined
}

/** The wait, in ms, that an OCL 429's headers imply at `now` (epoch ms), or undefined when they imply none. */
export function oclThrottleWait (headers: Readonly<Record<string, string>>, now: number): number | undefined {
  const day = remaining(headers['x-limitremaining-day'])
  if (day !== undefined && day <= 0) return DAY_MS
  const minute = remaining(headers['x-limitremaining-minute'])
  if (minute !== undefined && minute <= 0) return MINUTE_MS - (now % MINUTE_MS) + CLOCK_SKEW_MS
  return undefined
}
