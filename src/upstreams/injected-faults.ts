/**
 * The "next N requests fail" controls simulators offer tests: injected server errors first, then throttles,
 * each consumed by one request. Counting them in stats and shaping the answer stay with each simulator.
 */
export class InjectedFaults<Status extends number> {
  #errors = 0
  #errorStatus: Status
  #throttles = 0

  constructor (private readonly defaultStatus: Status) {
    this.#errorStatus = defaultStatus
  }

  /** The next `n` requests answer `status`. */
  failNext (n: number, status: Status = this.defaultStatus): void {
    this.#errors = n
    this.#errorStatus = status
  }

  /** The next `n` requests are throttled. */
  throttleNext (n: number): void {
    this.#throttles = n
  }

  /** Back to the given counts (none by default). */
  reset (opts: { errors?: number, status?: Status, throttles?: number } = {}): void {
    this.failNext(opts.errors ?? 0, opts.status ?? this.defaultStatus)
    this.throttleNext(opts.throttles ?? 0)
  }

  /** Consumes the fault due for this request, errors before throttles; null when none is left. */
  take (): { kind: 'error', status: Status } | { kind: 'throttle' } | null {
    if (this.#errors > 0) {
      this.#errors--
      return { kind: 'error', status: this.#errorStatus }
    }
    if (this.#throttles > 0) {
      this.#throttles--
      return { kind: 'throttle' }
    }
    return null
  }
}
