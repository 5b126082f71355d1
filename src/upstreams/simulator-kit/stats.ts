/**
 * Simulators' counters, which tests read to see what an upstream would have seen. A simulator declares its
 * counters once, as the values they start from, with a comment each; their type is that declaration's, and
 * {@link freshStats} copies it at start and at every reset, so no list of fields is written twice.
 */

/** A field of counts by key (`${resource}:${page}`, a digest…), empty at start; see bounds.ts for its size. */
export const byKey = (): Record<string, number> => ({})

/** The counters at their start, as a copy of their own: counts by key are never shared between two copies. */
export function freshStats<Stats extends object> (start: Stats): Stats {
  return structuredClone(start)
}

/** The sum of the counts of one resource, over the keys `${resource}:…` (its pages). */
export function totalOf (counts: Record<string, number>, resource: string): number {
  return Object.entries(counts).filter(([k]) => k.startsWith(`${resource}:`)).reduce((n, [, v]) => n + v, 0)
}
