/**
 * When a soak's series counts as flat. After the warm-up, with `first` the mean of the first third of the values,
 * `high` the highest of them, and `last` the mean of the last third:
 * - no value exceeds `high` × 1.25 + slack (no spike well above what the steady state already reached; measured
 *   against its highest value, not its mean, because some series are snapshots that swing with what is in flight
 *   at the moment of the sample: result rows went from 7,970 to 25,639 between two minutes of one run), and
 * - `last` ≤ `first` × 1.10 + slack / 2 (no trend: a table or heap that grows a little every minute fails here
 *   even when each step is small).
 * `slack` absorbs what is noise at these sizes (a few dozen rows in flight, a free-space-map page, a GC cycle).
 */

/** One measured quantity, minute by minute after the warm-up, with the absolute noise it is allowed. */
export interface Series { name: string, values: number[], slack: number }

export interface Verdict { name: string, flat: boolean, detail: string }

const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)

export function flatness (series: Series): Verdict {
  const { name, values, slack } = series
  const third = Math.max(1, Math.floor(values.length / 3))
  const first = mean(values.slice(0, third))
  const last = mean(values.slice(-third))
  const high = Math.max(...values.slice(0, third), 0)
  const peak = Math.max(...values, 0)
  const peakBound = high * 1.25 + slack
  const trendBound = first * 1.10 + slack / 2
  const flat = values.length > 0 && peak <= peakBound && last <= trendBound
  const f = (n: number): string => (Math.abs(n) >= 1e5 ? n.toExponential(3) : n.toFixed(1))
  return { name, flat, detail: `first third ${f(first)}, last third ${f(last)} (bound ${f(trendBound)}), peak ${f(peak)} (bound ${f(peakBound)})` }
}
