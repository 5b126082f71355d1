/**
 * ledger's simulator: seeded entries behind `X-Ledger-Key`, offset-paged, with the upstream's own 429. Built
 * on the simulator kit like the built-in ones.
 */
import type { FastifyPluginAsync } from 'fastify'
import { ADMISSION_STATS } from '../../../../../src/upstreams/simulator-kit/admission.js'
import { freshStats } from '../../../../../src/upstreams/simulator-kit/stats.js'
import { int, mulberry32, pick } from '../../../../../src/upstreams/simulator-kit/seeded-random.js'
import { stateOf, type SimulatorPluginOptions } from '../../../../../src/upstreams/simulator-kit/server.js'
import { LEDGER_PAGE_MAX } from '../params.js'

export interface LedgerSimulatorOptions { seed: number, count: number, key: string }

export class LedgerSimulatorState {
  readonly stats = freshStats({ ...ADMISSION_STATS, pages: 0 })
  readonly entries: Array<Record<string, unknown>>
  #throttle = 0

  constructor (readonly options: LedgerSimulatorOptions) {
    const r = mulberry32(options.seed)
    this.entries = Array.from({ length: options.count }, (_, i) => ({
      id: `L${String(i + 1).padStart(6, '0')}`,
      day: `2024-${String(int(r, 1, 12)).padStart(2, '0')}-${String(int(r, 1, 28)).padStart(2, '0')}`,
      amount: int(r, 1, 100_000) / 100,
      account: pick(r, ['cash', 'claims', 'payroll', 'supplies']),
    }))
  }

  /** The next `n` requests get 429. */
  throttleNext (n: number): void { this.#throttle += n }

  takeThrottle (): boolean {
    if (this.#throttle === 0) return false
    this.#throttle--
    return true
  }

  /** The entries a job with these params must end with, as the simulator serves their text. */
  expected (since: string | undefined): string[] {
    return this.entries.filter(e => since === undefined || (e.day as string) >= since).map(e => JSON.stringify(e))
  }
}

const count = (value: unknown, max: number): number | null => typeof value === 'string' && /^\d+$/.test(value) && Number(value) <= max ? Number(value) : null

export const ledgerSimulator: FastifyPluginAsync<SimulatorPluginOptions<LedgerSimulatorOptions, LedgerSimulatorState>> = async (app, opts) => {
  const state = stateOf(opts, options => new LedgerSimulatorState(options))
  app.get('/entries', async (request, reply) => {
    if (request.headers['x-ledger-key'] !== state.options.key) {
      state.stats.unauthorized++
      return reply.code(401).send({ error: 'unauthorized' })
    }
    if (state.takeThrottle()) {
      state.stats.throttled++
      return reply.code(429).header('retry-after', '0').send({ error: 'slow down' })
    }
    const q = request.query as Record<string, unknown>
    const offset = count(q.offset, Number.MAX_SAFE_INTEGER)
    const limit = count(q.limit, LEDGER_PAGE_MAX)
    const since = q.since
    if (offset === null || limit === null || limit === 0 || (since !== undefined && (typeof since !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(since)))) {
      return reply.code(400).send({ error: 'bad offset, limit or since' })
    }
    const all = state.entries.filter(e => since === undefined || (e.day as string) >= since)
    state.stats.pages++
    const end = offset + limit
    return { entries: all.slice(offset, end), next_offset: end < all.length ? end : null }
  })
}
