/**
 * A per-key request budget for rate-limited upstreams (Cliniko: 200 requests a minute per user), shared by
 * every job of the process and taken by the shared client before each attempt.
 */
import { sleep } from './backoff.js'

/** Options of a {@link RequestBudget}. */
export interface RequestBudgetOptions {
  /** The upstream's limit per key, e.g. 200 for Cliniko. */
  perMinute: number
  /** The window the limit counts over; default 60 000. Only tests against a fast simulator change it. */
  windowMs?: number
  /** The fraction of the limit held back for clock skew and requests made elsewhere with the key; default 0.05. */
  margin?: number
  /** Epoch ms; injectable for tests, together with sleep. */
  now?: () => number
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
}

/**
 * A per-key limit on attempts, shared by every job of the process: no sliding window (60 s unless windowMs
 * says otherwise) holds more than perMinute * (1 - margin) of them. A sliding log rather than a token bucket
 * because it is exact against an "N per minute" rule with nothing to tune; it lets a burst through and then
 * spaces the rest as the window slides. Keys should be non-secret (e.g. a hash of the API key): they stay in memory.
 */
export class RequestBudget {
  readonly #limit: number
  readonly #windowMs: number
  readonly #now: () => number
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>
  readonly #keys = new Map<string, { sent: number[], pausedUntil: number }>()

  constructor ({ perMinute, windowMs = 60_000, margin = 0.05, now = Date.now, sleep: wait = sleep }: RequestBudgetOptions) {
    this.#limit = Math.max(1, Math.floor(perMinute * (1 - margin)))
    this.#windowMs = windowMs
    this.#now = now
    this.#sleep = wait
  }

  /** Resolves when one more attempt fits the key's budget and counts it; rejects with `signal.reason` on abort. */
  async take (key: string, signal: AbortSignal): Promise<void> {
    const state = this.#state(key)
    // Waiters for the same key wake and re-check; the check and the push run without an await between them.
    for (;;) {
      signal.throwIfAborted()
      const now = this.#now()
      while (state.sent.length > 0 && state.sent[0]! <= now - this.#windowMs) state.sent.shift()
      const wait = state.pausedUntil > now
        ? state.pausedUntil - now
        : state.sent.length >= this.#limit ? state.sent[0]! + this.#windowMs - now : 0
      if (wait <= 0) {
        state.sent.push(now)
        return
      }
      await this.#sleep(wait, signal)
    }
  }

  /** Holds every attempt with this key until `epochMs`, e.g. after a 429 with X-RateLimit-Reset. */
  pauseUntil (key: string, epochMs: number): void {
    const state = this.#state(key)
    state.pausedUntil = Math.max(state.pausedUntil, epochMs)
  }

  #state (key: string): { sent: number[], pausedUntil: number } {
    let state = this.#keys.get(key)
    if (!state) this.#keys.set(key, state = { sent: [], pausedUntil: 0 })
    return state
  }
}
