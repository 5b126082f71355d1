/**
 * Reused buffers for large byte arrays that live for one page: an upstream page's body, a stored page's parts.
 *
 * Why by hand: a page's buffers used to be allocated afresh. Many wait their turn to be saved long enough for V8 to
 * promote them to its old generation, so they were freed only at the next full collection, tens of MB later, and
 * glibc kept much of what they had held (its mmap threshold rises to the largest buffer freed, so later ones come
 * from the heap, which it seldom returns). A buffer given back here serves the next page instead: memory follows
 * the pages in flight, not the process's history. A pool keeps at most maxCount spares of at most maxBytes, and
 * drops them all after idleMs without a give-back, so what a burst left behind goes too. Node's own pool (`Buffer.allocUnsafe`) only serves buffers under
 * 4 KB, and no maintained package does exactly this (take, give back once, bounded).
 */

export class BufferPool {
  readonly #spare: Buffer[] = []
  /** The spare buffers' memory, to refuse a second give-back of the same buffer. */
  readonly #held = new Set<ArrayBufferLike>()
  /** Drops the spares once no buffer has been given back for idleMs: a burst's buffers do not stay for good. */
  #idle: NodeJS.Timeout | undefined

  /**
   * @param maxCount spare buffers kept at most
   * @param maxBytes a larger buffer is never kept (nor taken from here)
   * @param minBytes buffers are allocated at least this large, so that one serves pages of different sizes
   * @param idleMs the spares are dropped once none has been given back for this long
   */
  constructor (readonly maxCount: number, readonly maxBytes: number, readonly minBytes = 64 * 1024, readonly idleMs = 30_000) {}

  /** A buffer of exactly `size` bytes (a view of a spare one when one is large enough); its contents are undefined. */
  take (size: number): Buffer {
    const i = this.#spare.findIndex(b => b.length >= size)
    if (i === -1) return Buffer.allocUnsafeSlow(size > this.maxBytes ? size : this.#rounded(size)).subarray(0, size)
    const buf = this.#spare.splice(i, 1)[0] as Buffer
    this.#held.delete(buf.buffer)
    return buf.subarray(0, size)
  }

  /**
   * Gives back a buffer from {@link take} (or a view of one) for a later take. Only once nothing reads it again,
   * nor any view of it: the next taker overwrites it. A buffer given back twice is kept once.
   */
  give (buf: Buffer): void {
    const memory = buf.buffer
    // Below minBytes it may be a slab Node shares among small buffers: never reuse that.
    if (memory.byteLength < this.minBytes || memory.byteLength > this.maxBytes) return
    if (this.#spare.length >= this.maxCount || this.#held.has(memory)) return
    this.#held.add(memory)
    this.#spare.push(Buffer.from(memory, 0, memory.byteLength))
    if (this.#idle === undefined) {
      this.#idle = setTimeout(() => {
        this.#spare.length = 0
        this.#held.clear()
        this.#idle = undefined
      }, this.idleMs).unref()
    } else this.#idle.refresh()
  }

  /**
   * At least minBytes, and rounded up to an eighth of the next power of two (at most 25% more), so that a buffer serves
   * the slightly larger page or batch that follows, not only smaller ones.
   */
  #rounded (size: number): number {
    if (size <= this.minBytes) return this.minBytes
    const step = 2 ** Math.ceil(Math.log2(size)) / 8
    return Math.min(this.maxBytes, Math.ceil(size / step) * step)
  }

  /** Spare buffers kept now (for tests). */
  get spareCount (): number {
    return this.#spare.length
  }
}
