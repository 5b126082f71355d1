/**
 * The faults a simulator's state injects into its own protocol, for tests: "the next N requests fail" controls
 * and, where a simulator offers them, ratios drawn from a seeded PRNG. Injected server errors come before
 * throttles, each consumed by one request. Counting them in stats and wording the answer stay with each
 * simulator, as each upstream words its 429 its own way; what every simulator agrees on is here.
 * What the network and the machines in front of any upstream do to its answers is in wire-faults.ts.
 */
import type { FastifyReply } from 'fastify'
import { mulberry32, type Rand } from './seeded-random.js'

/**
 * The server errors a test injects: a 500 from the upstream itself (in its own words), a 502 or a 503 from the
 * proxy or load balancer in front of it (see {@link proxyErrorText}).
 */
export type InjectedStatus = 500 | 502 | 503

/**
 * What a simulator decides for a request before its endpoint: let it through, throttle it (with whatever the
 * upstream's 429 carries, e.g. `{ seconds }`), or answer an injected error.
 */
export type Verdict<Throttle extends object = Record<never, never>, Status extends number = InjectedStatus> =
  { kind: 'pass' } | ({ kind: 'throttle' } & Throttle) | { kind: 'error', status: Status }

/**
 * The words of a 502 or a 503: the proxy or load balancer in front of an upstream answers those for it, so every
 * simulator says them the same way, whatever the upstream's own dialect.
 */
export function proxyErrorText (status: 502 | 503): string {
  return status === 502 ? 'Bad Gateway' : 'Service Unavailable'
}

/** Sends a proxy's 502 or 503: {@link proxyErrorText} in plain text. */
export function sendProxyError (reply: FastifyReply, status: 502 | 503): FastifyReply {
  return reply.code(status).type('text/plain; charset=utf-8').send(proxyErrorText(status))
}

export class InjectedFaults<Status extends number = InjectedStatus> {
  #errors = 0
  #errorStatus: Status
  #throttles = 0
  #errorRatio = 0
  #throttleRatio = 0
  #random: Rand = seeded(undefined)

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

  /**
   * Random faults on every request, once the counted ones are used up: ratios in 0..1, drawn from the PRNG seeded
   * at {@link reset}, so runs repeat. `status` is that of every injected error from now on, counted ones included.
   */
  setRatios (ratios: { error?: number, throttle?: number, status?: Status }): void {
    if (ratios.throttle !== undefined) this.#throttleRatio = ratios.throttle
    if (ratios.error !== undefined) this.#errorRatio = ratios.error
    if (ratios.status !== undefined) this.#errorStatus = ratios.status
  }

  /** Back to the given counts and ratios (none by default), the PRNG seeded anew from `seed` (default 1). */
  reset (opts: { errors?: number, status?: Status, throttles?: number, errorRatio?: number, throttleRatio?: number, seed?: number } = {}): void {
    this.failNext(opts.errors ?? 0, opts.status ?? this.defaultStatus)
    this.throttleNext(opts.throttles ?? 0)
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
    if (this.#errors > 0) {
      this.#errors--
      return { kind: 'error', status: this.#errorStatus }
    }
    if (this.#errorRatio > 0 && this.#random() < this.#errorRatio) return { kind: 'error', status: this.#errorStatus }
    if (this.#throttles > 0) {
      this.#throttles--
      return { kind: 'throttle' }
    }
    if (this.#throttleRatio > 0 && this.#random() < this.#throttleRatio) return { kind: 'throttle' }
    return null
  }
}

/** The PRNG of the fault ratios; the salt keeps it apart from the PRNG of the records under the same seed. */
const seeded = (seed: number | undefined): Rand => mulberry32((seed ?? 1) ^ 0x5eed)
