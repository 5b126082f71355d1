/**
 * What the simulators that serve lists of generated records (DrChrono, Cliniko) share: how many records a
 * resource holds, and a memory of the last lists computed. A list is computed by generating and filtering every
 * record of its resource, and every page of a job asks for the same list: computing it once per page would make
 * a job's cost grow with the square of its size.
 */

/** Records per resource: one number for every resource, or some resources by name (the others keep their default). */
export type RecordCount<Resource extends string> = number | Partial<Record<Resource, number>>

/** Options that shape the generated records: the simulator takes them, and tests pass the same ones to compute a job's records. */
export interface SeededRecords<Resource extends string> {
  /** Seeds every record. Default 1. */
  seed?: number
  recordCount?: RecordCount<Resource>
}

/** How many records `resource` holds under `recordCount`, `defaults` filling in what it does not say. */
export function recordCountOf<Resource extends string> (
  resource: Resource, recordCount: RecordCount<Resource> | undefined, defaults: Record<Resource, number>
): number {
  if (typeof recordCount === 'number') return recordCount
  return recordCount?.[resource] ?? defaults[resource]
}

/**
 * `compute`, remembering its last `size` answers by `keyOf` (the least recently used is forgotten first): a few
 * jobs' pages interleave, so more than one list is worth keeping, and each can be large.
 */
export function recentlyComputed<Args extends unknown[], Value> (
  compute: (...args: Args) => Value, keyOf: (...args: Args) => string, size = 16
): (...args: Args) => Value {
  const cache = new Map<string, Value>()
  return (...args: Args): Value => {
    const key = keyOf(...args)
    let hit = cache.get(key)
    if (hit !== undefined) cache.delete(key)
    else hit = compute(...args)
    cache.set(key, hit)
    if (cache.size > size) cache.delete(cache.keys().next().value as string)
    return hit
  }
}
