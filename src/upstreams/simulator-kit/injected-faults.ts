/**
 * The "next N requests fail" controls simulators offer tests: injected server errors first, then throttles,
 * each consumed by one request. Counting them in stats and shaping the answer stay with each simulator.
 * Below them, {@link WireFaults}: what the network and the machines in front of any upstream do to its answers.
 */
import { mulberry32 } from './seeded-random.js'

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

/**
 * Faults of the wire rather than of an upstream's protocol: what a load balancer, an API gateway, a buggy release
 * or a broken connection does to any upstream's answers. A simulator gets them from `serveSimulator`'s
 * `wireFaults` option (off unless given); each request draws at most one, armed ones first, then by ratio.
 * - `unavailable`: 503 "Service Unavailable" in plain text before the upstream sees the request (a load balancer);
 * - `throttle`: 429 `{"message":"Too Many Requests"}`, no Retry-After, before the upstream sees it (an API gateway);
 * - `hang`: the upstream handles the request, and its answer never comes (the connection stays open);
 * - `stall`: status, headers and half the body come, then nothing more;
 * - `reset`: the upstream handles the request, then the connection is reset before any answer;
 * - `truncate`: a 2xx JSON body cut in half, correctly framed (the Content-Length of what is sent);
 * - `garble`: a 2xx JSON answer whose body is an HTML page;
 * - `wrongShape`: a 2xx JSON answer whose body is valid JSON of another shape (see {@link reshape}).
 * `stall` and the body faults only spoil 2xx JSON answers: an armed one waits for the next such answer.
 */
export const WIRE_FAULT_KINDS = ['unavailable', 'throttle', 'hang', 'stall', 'reset', 'truncate', 'garble', 'wrongShape'] as const

export type WireFaultKind = typeof WIRE_FAULT_KINDS[number]

/** A fault drawn for one request; `armed` when it came from the queue rather than by ratio. */
export interface DrawnWireFault { kind: WireFaultKind, armed: boolean }

export class WireFaults {
  /** Faults applied so far, by kind. */
  readonly applied = Object.fromEntries(WIRE_FAULT_KINDS.map(k => [k, 0])) as Record<WireFaultKind, number>
  /** Armed faults in order; null lets one request through untouched. */
  #queue: Array<WireFaultKind | null> = []
  #ratios: Partial<Record<WireFaultKind, number>> = {}
  #random: () => number

  /** `seed` makes the ratio draws repeat from run to run. */
  constructor (opts: { seed?: number, ratios?: Partial<Record<WireFaultKind, number>> } = {}) {
    this.#random = mulberry32((opts.seed ?? 1) ^ 0x3a7e)
    this.setRatios(opts.ratios ?? {})
  }

  /**
   * The next `n` requests (answers, for the body faults) get `kind`, after those armed before and after
   * `after` requests that pass untouched (a fault in the middle of a job).
   */
  arm (kind: WireFaultKind, n = 1, opts: { after?: number } = {}): void {
    for (let i = 0; i < (opts.after ?? 0); i++) this.#queue.push(null)
    for (let i = 0; i < n; i++) this.#queue.push(kind)
  }

  /** Each request draws a fault with these probabilities (their sum at most 1), once nothing is armed. */
  setRatios (ratios: Partial<Record<WireFaultKind, number>>): void {
    const sum = Object.values(ratios).reduce((a, b) => a + b, 0)
    if (sum > 1 || Object.values(ratios).some(r => r < 0)) throw new RangeError('wire fault ratios must be ≥ 0 and sum to at most 1')
    this.#ratios = { ...ratios }
  }

  /** No armed faults, no ratios; the counts of applied faults stay. */
  clear (): void {
    this.#queue = []
    this.#ratios = {}
  }

  /** Armed faults not applied yet. */
  get pending (): number {
    return this.#queue.filter(k => k !== null).length
  }

  /** Faults applied so far, all kinds together. */
  get total (): number {
    return Object.values(this.applied).reduce((a, b) => a + b, 0)
  }

  /** The fault for one request, if any. */
  draw (): DrawnWireFault | null {
    if (this.#queue.length > 0) {
      const armed = this.#queue.shift() as WireFaultKind | null
      return armed === null ? null : { kind: armed, armed: true }
    }
    let r = this.#random()
    for (const kind of WIRE_FAULT_KINDS) {
      r -= this.#ratios[kind] ?? 0
      if (r < 0) return { kind, armed: false }
    }
    return null
  }

  /** A drawn fault that found nothing to spoil: an armed one waits for the next answer, one drawn by ratio is dropped. */
  unused (fault: DrawnWireFault): void {
    if (fault.armed) this.#queue.unshift(fault.kind)
  }

  /** Counts a fault that was applied. */
  count (kind: WireFaultKind): void {
    this.applied[kind]++
  }
}

/**
 * Valid JSON of another shape than `value`: an array comes wrapped in an envelope (`{"results": [...]}`, as
 * another version of an API might send), an object keeps its keys with every value's type swapped (arrays
 * become objects, objects arrays, strings numbers, numbers and booleans strings, null an object).
 */
export function reshape (value: unknown): unknown {
  if (Array.isArray(value)) return { count: value.length, results: value }
  if (typeof value !== 'object' || value === null) return { value }
  const swap = (v: unknown): unknown => {
    if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x]))
    if (typeof v === 'object' && v !== null) return Object.values(v)
    if (typeof v === 'string') return v.length
    if (typeof v === 'number' || typeof v === 'boolean') return String(v)
    return {}
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, swap(v)]))
}
