/**
 * Waiting: how long between attempts (a capped exponential backoff) and the interruptible wait itself. Used by
 * every layer (the worker's claim loop, the sweeper, the listener's reconnects, the upstream client's retries).
 */

/** Bounds of an exponential backoff. */
export interface BackoffOptions {
  /** The ceiling of the first retry's delay. */
  baseMs: number
  /** No delay exceeds this, however many attempts failed. */
  maxMs: number
}

/**
 * The delay before retrying after failed attempt number `attempt` (1 = the first attempt failed).
 *
 * Capped exponential with EQUAL jitter: the ceiling is min(maxMs, baseMs * 2^(attempt-1)) and the delay is
 * uniform in [ceiling/2, ceiling). Full jitter spreads retries a little better, but may retry almost at once;
 * equal jitter keeps a floor that grows with each failure, so a struggling upstream (or one that refuses
 * bursts, like DrChrono) always gets some breathing room, while the random half still de-synchronises jobs.
 */
export function backoffDelay (attempt: number, { baseMs, maxMs }: BackoffOptions, random: () => number = Math.random): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new RangeError(`attempt must be an integer >= 1, got ${attempt}`)
  // The exponent is bounded so that baseMs * 2^n never becomes Infinity (and 0 * Infinity never NaN).
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 52))
  const half = ceiling / 2
  // Math.min guards against a random() that returns exactly 1 from an injected source.
  return Math.floor(half + half * Math.min(Math.max(random(), 0), 1))
}

/**
 * Resolves after `ms`; rejects with `signal.reason` at once when the signal is (or becomes) aborted.
 * Leaves neither a timer nor an abort listener behind either way.
 */
export function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, Math.max(0, ms))
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
