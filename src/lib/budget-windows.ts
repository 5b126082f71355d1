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

/** The requests a window counts at `now`, in the order sent. */
function counted (w: BudgetWindow, sentAt: readonly number[], now: number): readonly number[] {
  if (w.kind === 'clock') {
    const start = Math.floor(now / w.windowMs) * w.windowMs
    return sentAt.filter(t => t >= start)
  }
  return sentAt.filter(t => t > now - w.windowMs)
}

/** Requests a window still allows at `now`. */
export function windowRemaining (w: BudgetWindow, sentAt: readonly number[], now: number): number {
  return Math.max(0, w.limit - counted(w, sentAt, now).length)
}

/** How long one more request must wait under one window: to the next clock window, or until the sliding one frees a place. */
export function windowWaitMs (w: BudgetWindow, sentAt: readonly number[], now: number): number {
  const inWindow = counted(w, sentAt, now)
  if (inWindow.length < w.limit) return 0
  if (w.kind === 'clock') return Math.floor(now / w.windowMs) * w.windowMs + w.windowMs - now
  // The oldest request that must leave the window before one more fits.
  return (inWindow[inWindow.length - w.limit] as number) + w.windowMs - now
}

/**
 * How long one more request must wait under a budget, and why: the longest of its windows' waits and of a pause
 * (after a 429). `sentAt` are the epoch ms of the requests counted, ascending.
 */
export function budgetWaitMs (spec: BudgetSpec, sentAt: readonly number[], pausedUntil: number, now: number): { waitMs: number, reason: string } {
  let waitMs = Math.max(0, pausedUntil - now)
  let reason = `the end of a 429 pause (${spec.upstream} asked to slow down)`
  for (const w of spec.windows) {
    const ms = windowWaitMs(w, sentAt, now)
    if (ms > waitMs) { waitMs = ms; reason = w.label }
  }
  return { waitMs, reason }
}

/** The earliest send time any window of the budget still counts: older requests can be forgotten. */
export function countedSince (spec: BudgetSpec, now: number): number {
  return Math.min(now, ...spec.windows.map(w => w.kind === 'clock' ? Math.floor(now / w.windowMs) * w.windowMs : now - w.windowMs))
}
