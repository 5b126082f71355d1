/**
 * Request budgets: how many requests one set of upstream credentials may send, shared by every job (and, with the
 * PostgreSQL store the gateway uses, by every replica). The shared client takes the budget before each attempt
 * and pauses it after a 429. This module holds the contract and the in-process store that adapter tests use.
 */
import { REPORTED_WAIT_MS, budgetWaitMs, countedSince, windowUse, type BudgetSpec, type BudgetTaker } from '../lib/budget-windows.js'
import { sleep } from '../lib/time.js'

export type { BudgetSpec, BudgetTaker, BudgetWait, BudgetWindow } from '../lib/budget-windows.js'

/** Where budgets are counted. */
export interface BudgetStore {
  /** Resolves when one more request fits every window of the budget, and counts it; rejects with the signal's reason. */
  take (spec: BudgetSpec, taker: BudgetTaker | undefined, signal: AbortSignal): Promise<void>
  /** Holds every request of the budget until `epochMs` (the upstream answered 429 and said until when). */
  pause (spec: BudgetSpec, epochMs: number): Promise<void>
}

/** Options of a {@link MemoryBudgetStore}. */
export interface MemoryBudgetOptions {
  /** Epoch ms; injectable for tests, together with sleep. */
  now?: () => number
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
}

/**
 * Budgets counted in this process only: for adapter tests and tools that run without a database. Exact against
 * "N per window" rules (a log of send times rather than a token bucket): a burst goes at once, the rest is spaced
 * as the window slides. No fairness between clients: the gateway's PostgreSQL store provides it.
 */
export class MemoryBudgetStore implements BudgetStore {
  readonly #now: () => number
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>
  readonly #keys = new Map<string, { sent: number[], pausedUntil: number }>()
  #waiters = 0

  constructor ({ now = Date.now, sleep: wait = sleep }: MemoryBudgetOptions = {}) {
    this.#now = now
    this.#sleep = wait
  }

  async take (spec: BudgetSpec, taker: BudgetTaker | undefined, signal: AbortSignal): Promise<void> {
    const state = this.#state(spec.key)
    const waiter = `memory-${++this.#waiters}`
    let waiting = false
    // Waiters for the same key wake and re-check; the check and the push run without an await between them.
    for (;;) {
      signal.throwIfAborted()
      const now = this.#now()
      const since = countedSince(spec, now)
      while (state.sent.length > 0 && (state.sent[0] as number) < since) state.sent.shift()
      const { waitMs, reason } = budgetWaitMs(spec, spec.windows.map(w => windowUse(w, state.sent, now)), state.pausedUntil, now)
      if (waitMs <= 0) {
        state.sent.push(now)
        if (waiting) taker?.onWait?.(waiter, null)
        return
      }
      if (!waiting && waitMs >= REPORTED_WAIT_MS) {
        taker?.onWait?.(waiter, { reason, until: new Date(now + waitMs) })
        waiting = true
      }
      await this.#sleep(waitMs, signal)
    }
  }

  async pause (spec: BudgetSpec, epochMs: number): Promise<void> {
    const state = this.#state(spec.key)
    state.pausedUntil = Math.max(state.pausedUntil, epochMs)
  }

  #state (key: string): { sent: number[], pausedUntil: number } {
    let state = this.#keys.get(key)
    if (!state) this.#keys.set(key, state = { sent: [], pausedUntil: 0 })
    return state
  }
}
