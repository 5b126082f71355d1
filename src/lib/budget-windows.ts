/**
 * The rules of request budgets, shared by the in-process store (adapter tests) and the PostgreSQL store every
 * replica counts in: what a budget is, and how long a request must wait under one of its windows.
 */

/** One limit of a budget. */
export interface BudgetWindow {
  /** Requests allowed in one window. */
  limit: number
  windowMs: number
  /**
   * `sliding`: no span of `windowMs` holds more than `limit` (Cliniko's minute, DrChrono's burst throttle).
   * `clock`: fixed windows aligned on the UNIX epoch, so an hour resets at the top of each clock hour, UTC
   * (DrChrono's hourly budget).
   */
  kind: 'sliding' | 'clock'
  /** A short name for metrics, e.g. `hour`. */
  name: string
  /** What a waiting job's X-Progress names, e.g. "DrChrono's hourly request budget". */
  label: string
}

/** A budget: one key (never a secret: a digest of the credentials) and its windows. */
export interface BudgetSpec {
  /** The upstream it belongs to, for metrics. */
  upstream: string
  key: string
  windows: readonly BudgetWindow[]
}

/** Why a request waits, and until when at the latest (it may go earlier when the budget frees up). */
export interface BudgetWait {
  reason: string
  until: Date
}

/** Who takes the budget: the client owning the job (budgets are shared fairly between clients). */
export interface BudgetTaker {
  clientId: string
  /**
   * Told when a request (`waiter`, unique per request) starts a wait of a second or more, again when its end moves,
   * and with null once it goes. Shorter waits (the per-second ceiling, a turn) are not worth telling anyone.
   */
  onWait?: (waiter: string, wait: BudgetWait | null) => void
}

/** The shortest wait a job's readers are told about. */
export const REPORTED_WAIT_MS = 1000

/** The first send time a window counts at `now`: the current clock window's start, or `windowMs` ago. */
export function windowStart (w: BudgetWindow, now: number): number {
  return w.kind === 'clock' ? Math.floor(now / w.windowMs) * w.windowMs : now - w.windowMs
}

/** Whether a window counts a request sent at `t` (a sliding window's start is already out). */
export const countsAt = (w: BudgetWindow, t: number, now: number): boolean => w.kind === 'clock' ? t >= windowStart(w, now) : t > windowStart(w, now)

/**
 * What a window holds at `now`: how many requests it counts, and the send time of the `limit`-th newest of them
 * (null while it holds fewer): the one that must leave a full sliding window before one more fits.
 */
export interface WindowUse { count: number, limitthNewest: number | null }

/** A window's use from the send times of its budget's requests, ascending (the in-process store's way). */
export function windowUse (w: BudgetWindow, sentAt: readonly number[], now: number): WindowUse {
  const inWindow = sentAt.filter(t => countsAt(w, t, now))
  return { count: inWindow.length, limitthNewest: inWindow.length >= w.limit ? inWindow[inWindow.length - w.limit] as number : null }
}

/** Requests a window still allows. */
export const windowRemaining = (w: BudgetWindow, use: WindowUse): number => Math.max(0, w.limit - use.count)

/** How long one more request must wait under one window: to the next clock window, or until the sliding one frees a place. */
export function windowWaitMs (w: BudgetWindow, use: WindowUse, now: number): number {
  if (use.count < w.limit) return 0
  if (w.kind === 'clock') return windowStart(w, now) + w.windowMs - now
  return use.limitthNewest === null ? 0 : use.limitthNewest + w.windowMs - now
}

/**
 * How long one more request must wait under a budget, and why: the longest of its windows' waits (`uses`, in the
 * order of `spec.windows`) and of a pause (after a 429).
 */
export function budgetWaitMs (spec: BudgetSpec, uses: readonly WindowUse[], pausedUntil: number, now: number): { waitMs: number, reason: string } {
  let waitMs = Math.max(0, pausedUntil - now)
  let reason = `the end of a 429 pause (${spec.upstream} asked to slow down)`
  spec.windows.forEach((w, i) => {
    const ms = windowWaitMs(w, uses[i] ?? { count: 0, limitthNewest: null }, now)
    if (ms > waitMs) { waitMs = ms; reason = w.label }
  })
  return { waitMs, reason }
}

/** The earliest send time any window of the budget still counts: older requests can be forgotten. */
export function countedSince (spec: BudgetSpec, now: number): number {
  return Math.min(now, ...spec.windows.map(w => windowStart(w, now)))
}
