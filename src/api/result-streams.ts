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
