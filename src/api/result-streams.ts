/**
 * What keeps NDJSON result streams from holding a gateway's memory and connections for slow or absent readers:
 * a cap on the streams one client has open at once, and a stall watch that ends a stream whose client has taken
 * nothing for a while. Both are per process: with N replicas a client may hold N times the cap.
 */

/** Open NDJSON streams per client, at most `max` each. */
export class StreamSlots {
  readonly #open = new Map<string, number>()

  constructor (readonly max: number) {}

  /**
   * A slot for the client, as the function that gives it back (once, however often it is called), or null when
   * the client has all of its slots taken.
   */
  take (client: string): (() => void) | null {
    const open = this.#open.get(client) ?? 0
    if (open >= this.max) return null
    this.#open.set(client, open + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.#open.get(client) ?? 1) - 1
      if (left > 0) this.#open.set(client, left)
      else this.#open.delete(client)
    }
  }

  /** How many streams the client has open. */
  openBy (client: string): number {
    return this.#open.get(client) ?? 0
  }
}

/**
 * Fires `onStall` once if it stays armed for `ms`. A stream arms it while its data waits on the client (a chunk
 * handed over and not yet taken) and disarms it when the client takes it; time spent reading the database is
 * never counted against the client.
 */
export class StallWatch {
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor (readonly ms: number, readonly onStall: () => void) {}

  arm (): void {
    if (this.#stopped || this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#stopped = true
      this.onStall()
    }, this.ms)
  }

  disarm (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** For good: the stream ended. */
  stop (): void {
    this.disarm()
    this.#stopped = true
  }
}

/**
 * Gives an NDJSON stream's batches back for reuse (RecordBatch.release) once every byte of them has left the process.
 * A slice handed to the response body (a Readable) has been written to the response once that Readable no longer
 * buffers it; what was written has left once nothing waits in the response or its socket (`writableLength` 0: every
 * write's callback has run). Checked as the stream goes on and when the response drains. A batch still waiting when
 * the stream ends, or beyond the last `max`, is left to the garbage collector: nothing is given back early.
 */
export class BatchReleases {
  #yielded = 0
  readonly #waiting: Array<{ through: number, release: () => void }> = []

  constructor (
    private readonly response: { writableLength: number, on (event: 'drain', listener: () => void): unknown },
    /** Slices handed to the body and still buffered in it (its readableLength, in object mode). */
    private readonly buffered: () => number,
    private readonly max = 2
  ) {
    response.on('drain', () => this.check())
  }

  /** One more slice was handed to the body. */
  yielded (): void {
    this.#yielded++
  }

  /** Every slice of a batch has been handed to the body: give it back once they have left. */
  add (release: (() => void) | undefined): void {
    if (release === undefined) return
    this.#waiting.push({ through: this.#yielded, release })
    if (this.#waiting.length > this.max) this.#waiting.shift()
    this.check()
  }

  check (): void {
    if (this.#waiting.length === 0 || this.response.writableLength !== 0) return
    const written = this.#yielded - this.buffered()
    while (this.#waiting.length > 0 && (this.#waiting[0] as { through: number }).through <= written) {
      (this.#waiting.shift() as { release: () => void }).release()
    }
  }
}
