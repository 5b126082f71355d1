/**
 * The faults a simulator's state injects into its own protocol, for tests: "the next N requests fail" controls
 * and, where a simulator offers them, ratios drawn from a seeded PRNG. Injected server errors come before
 * throttles, each consumed by one request, and counted in the simulator's admission stats. Wording the answer
 * stays with each simulator (admission.ts). What the network and the machines in front of any upstream do to its
 * answers is in wire-faults.ts.
 */
import type { AdmissionStats, InjectedStatus, Verdict } from './admission.js'
import { mulberry32, type Rand } from './seeded-random.js'

/** A "the next `n` times" control: {@link arm} says how many are left, each {@link take} uses one up. */
export class Countdown {
  #left = 0

  /** The next `n` takes answer true, whatever was left before. */
  arm (n: number): void {
    this.#left = n
  }

  /** Whether this time is one of the armed ones; it is used up. */
  take (): boolean {
    if (this.#left <= 0) return false
    this.#left--
    return true
  }
}

export class InjectedFaults<Status extends number = InjectedStatus> {
  readonly #errors = new Countdown()
  #errorStatus: Status
  readonly #throttles = new Countdown()
  #throttleSeconds = 1
  #errorRatio = 0
  #throttleRatio = 0
  #random: Rand = seeded(undefined)

  constructor (private readonly defaultStatus: Status) {
    this.#errorStatus = defaultStatus
  }

  /** The next `n` requests answer `status`. */
  failNext (n: number, status: Status = this.defaultStatus): void {
    this.#errors.arm(n)
    this.#errorStatus = status
  }

  /**
   * The next `n` requests are throttled, each naming a wait of `seconds` (by default the wait named last) in the
   * upstream's own way: a Retry-After, a reset time, a sentence.
   */
  throttleNext (n: number, seconds = this.#throttleSeconds): void {
    this.#throttles.arm(n)
    this.#throttleSeconds = seconds
  }

  /**
   * Random faults on every request, once the counted ones are used up: ratios in 0..1, drawn from the PRNG seeded
   * at {@link reset}, so runs repeat. `status` is that of every injected error from now on, counted ones included.
   */
  setRatios (ratios: { error?: number, throttle?: number, status?: Status }): void {
    if (ratios.throttle !== undefined) this.#throttleRatio = ratios.throttle
    if (ratios.error !== undefined) this.#errorRatio = ratios.error
    if (ratios.status !== undefined) this.#errorStatus = ratios.status
  }

  /**
   * Back to the given counts and ratios (none by default), throttles naming `throttleSeconds` (default 1), the PRNG
   * seeded anew from `seed` (default 1).
   */
  reset (opts: {
    errors?: number, status?: Status, throttles?: number, throttleSeconds?: number, errorRatio?: number, throttleRatio?: number, seed?: number
  } = {}): void {
    this.failNext(opts.errors ?? 0, opts.status ?? this.defaultStatus)
    this.throttleNext(opts.throttles ?? 0, opts.throttleSeconds ?? 1)
    this.#errorRatio = opts.errorRatio ?? 0
    this.#throttleRatio = opts.throttleRatio ?? 0
    this.#random = seeded(opts.seed)
  }

  /**
   * Consumes the fault due for this request, null when none: a counted error, else one by ratio, then a counted
   * throttle, else one by ratio. The PRNG is drawn only for a ratio above 0, so a seed gives the same faults
   * whatever the ratio left at 0.
   */
  take (): { kind: 'error', status: Status } | { kind: 'throttle' } | null {
    if (this.#errors.take() || (this.#errorRatio > 0 && this.#random() < this.#errorRatio)) return { kind: 'error', status: this.#errorStatus }
    if (this.#throttles.take() || (this.#throttleRatio > 0 && this.#random() < this.#throttleRatio)) return { kind: 'throttle' }
    return null
  }

  /**
   * The verdict of the fault due for this request ({@link take}), counted in `stats`; a throttle carries what
   * `throttle(seconds)` says the upstream's 429 needs to name the wait.
   */
  verdict<Throttle extends object> (stats: AdmissionStats, throttle: (seconds: number) => Throttle): Verdict<Throttle, Status> {
    const fault = this.take()
    if (fault === null) return { kind: 'pass' }
    if (fault.kind === 'error') {
      stats.serverErrors++
      return fault
    }
    stats.throttled++
    return { kind: 'throttle', ...throttle(this.#throttleSeconds) }
  }
}

/** The PRNG of the fault ratios; the salt keeps its draws apart from those of other PRNGs under the same seed. */
const seeded = (seed: number | undefined): Rand => mulberry32((seed ?? 1) ^ 0x5eed)
