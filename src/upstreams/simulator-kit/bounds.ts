/**
 * How much a simulator remembers. A sandbox simulator lives as long as the gateway, so everything in it that grows
 * with requests (lists, uuids, tasks, signed links, runs, deliveries, counters) keeps only its newest entries:
 * beyond the cap the oldest is forgotten, as an upstream forgets an old uuid or task, and whoever asks for it
 * later meets that upstream's own 404.
 *
 * Written here rather than taken from lru-cache: the states expose plain Maps, arrays and records that tests
 * read, and forgetting by order of insertion is a few lines over the insertion order Maps and records keep.
 */

/** Entries a simulator keeps per collection unless its options say otherwise. */
export const DEFAULT_MAX_ENTRIES = 1000

/** Counters are small: a collection of them keeps this many times the entries of the others. */
export const COUNTERS_PER_ENTRY = 10

/** Sets `key`, then forgets the oldest entries beyond `max`. */
export function remember<K, V> (map: Map<K, V>, key: K, value: V, max: number): void {
  map.set(key, value)
  for (const oldest of map.keys()) {
    if (map.size <= max) break
    map.delete(oldest)
  }
}

/** Drops the oldest items of a list (oldest first) beyond `max`. */
export function keepNewest<T> (list: T[], max: number): void {
  if (list.length > max) list.splice(0, list.length - max)
}

// Keys per record of counters, so a new key costs no count of the others; a record made afresh is counted once.
const sizes = new WeakMap<Record<string, number>, number>()

/** One more under `key`; a new key beyond `max` keys makes the record forget its oldest key. */
export function countUnder (counts: Record<string, number>, key: string, max: number): void {
  if (Object.hasOwn(counts, key)) {
    counts[key] = (counts[key] ?? 0) + 1
    return
  }
  let size = sizes.get(counts) ?? Object.keys(counts).length
  for (const oldest in counts) {
    if (size < max) break
    delete counts[oldest]
    size--
  }
  counts[key] = 1
  sizes.set(counts, size + 1)
}
