/**
 * Deterministic randomness for the simulators: the same seed always yields the same data, on every machine, so a
 * test can recompute the exact records a simulator serves instead of storing them. The helpers below are what
 * every simulator's fake data draws with.
 */

/** A source of numbers in [0, 1). */
export type Rand = () => number

/** mulberry32: a tiny, fast, well-mixed 32-bit PRNG returning numbers in [0, 1). */
export function mulberry32 (seed: number): Rand {
  let a = seed | 0
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * The PRNG of the record at (seed, kind, index): each record draws from one of its own, so a record is a pure
 * function of its place and any of them can be made without making those before it.
 */
export function randomAt (seed: number, kind: number, index: number): Rand {
  return mulberry32(seedOf(seed, kind, index))
}

/** One 32-bit PRNG seed per (seed, kind, index). */
function seedOf (seed: number, kind: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(kind, 0xc2b2ae35) ^ Math.imul(index + 1, 0x27d4eb2f)
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d)
  return h ^ (h >>> 15)
}

/** One item of `list`, drawn from `r`. */
export const pick = <T>(r: Rand, list: readonly T[]): T => list[Math.floor(r() * list.length)] as T

/** An integer from `min` to `max`, both included, drawn from `r`. */
export const int = (r: Rand, min: number, max: number): number => min + Math.floor(r() * (max - min + 1))
