/**
 * Faults of the wire rather than of an upstream's protocol, for any simulator: {@link WireFaults} says which
 * requests get which fault, {@link injectWireFaults} applies them to a simulator's Fastify app.
 */
import { once } from 'node:events'
import { PassThrough } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { sendProxyError } from './admission.js'
import { mulberry32 } from './seeded-random.js'

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

const MAINTENANCE_PAGE = '<!DOCTYPE html>\n<html><head><title>Maintenance</title></head><body><h1>We will be back soon</h1></body></html>\n'

/**
 * Applies {@link WireFaults} to every request of `app` (register it before the simulator's routes). Faults that
 * come before the upstream answer the request themselves; the others let the simulator handle it (its state
 * moves, as the real upstream's would) and then spoil or withhold the answer.
 */
export function injectWireFaults (app: FastifyInstance, faults: WireFaults): void {
  const drawn = new WeakMap<FastifyRequest, DrawnWireFault>()
  app.addHook('onRequest', async (request, reply) => {
    const fault = faults.draw()
    if (fault === null) return
    if (fault.kind === 'unavailable') {
      faults.count(fault.kind)
      return sendProxyError(reply, 503)
    }
    if (fault.kind === 'throttle') {
      faults.count(fault.kind)
      return reply.code(429).type('application/json').send('{"message":"Too Many Requests"}')
    }
    drawn.set(request, fault)
  })
  app.addHook('onSend', async (request, reply, payload) => {
    const fault = drawn.get(request)
    if (fault === undefined) return payload
    drawn.delete(request)
    if (fault.kind === 'hang' || fault.kind === 'reset') {
      faults.count(fault.kind)
      // Writing after the connection is gone is a no-op: the answer goes nowhere.
      if (fault.kind === 'reset') request.raw.socket.resetAndDestroy()
      else if (!reply.raw.destroyed) await once(reply.raw, 'close')
      return payload
    }
    const json = reply.statusCode >= 200 && reply.statusCode < 300 && /json/i.test(String(reply.getHeader('content-type') ?? '')) &&
      (typeof payload === 'string' || Buffer.isBuffer(payload))
    if (!json) {
      faults.unused(fault)
      return payload
    }
    faults.count(fault.kind)
    const body = Buffer.from(payload)
    const half = Math.max(1, Math.floor(body.length / 2))
    if (fault.kind === 'truncate') return body.subarray(0, half)
    if (fault.kind === 'garble') return MAINTENANCE_PAGE
    if (fault.kind === 'wrongShape') return JSON.stringify(reshape(JSON.parse(body.toString('utf8'))))
    // stall: the client is promised the whole body and gets half of it.
    void reply.header('content-length', String(body.length))
    const stalled = new PassThrough()
    stalled.write(body.subarray(0, half))
    reply.raw.once('close', () => stalled.destroy())
    return stalled
  })
}
