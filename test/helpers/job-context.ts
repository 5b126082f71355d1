/**
 * The engine's side of a job, in memory: one `JobContext` for every adapter test, so that each runs its adapter
 * against the same stand-in for the engine (src/engine/context.ts is the real one, over PostgreSQL).
 *
 * What it keeps, as the engine would:
 * - pages by number, each record as text (test/helpers/records.ts); a page saved twice keeps its first copy;
 * - every checkpoint, copied, in the order it was saved (by `savePage` or `saveCheckpoint`), and the progress
 *   update that came with it (`undefined` when none did);
 * - `upstreamInfo`, merged as the engine merges it;
 * - once the signal is aborted, `savePage` and `saveCheckpoint` throw its reason.
 */
import { pino } from 'pino'
import type { JobContext, PageRecords, Parked, ProgressUpdate } from '../../src/contract/adapter.js'
import type { BudgetWait } from '../../src/lib/budget-windows.js'
import { recordTexts } from './records.js'

export interface FakeJobOptions<Checkpoint> {
  /** The write payload (e.g. Clinia `{ operations }`); null for reads. The adapter gets a copy. */
  payload?: unknown
  /** The checkpoint an earlier attempt saved; null (the default) on a first attempt. */
  checkpoint?: Checkpoint | null
  /** The job's last attempt (JobContext.lastAttempt); false by default. */
  lastAttempt?: boolean
  /**
   * Pages an earlier attempt stored. The map is the store itself: this job's pages are added to it, and a page it
   * already holds is never replaced.
   */
  pages?: Map<number, readonly string[]>
  /** How long each page's save takes (a transaction takes a while); checkpoints are still recorded in commit order. */
  saveMs?: (page: number) => number
  /**
   * Called after each checkpoint is recorded, by `savePage` (with its page) or `saveCheckpoint` (page null); `n` is
   * how many checkpoints there are now. It may throw, to simulate a crash right after that checkpoint.
   */
  afterCheckpoint?: (checkpoint: Checkpoint, at: { page: number | null, n: number }) => void
  /** Makes `savePage` throw this message: for upstreams whose records arrive only by webhook. */
  refusePages?: string
  /** Called with each `setUpstreamInfo`, after the info is merged. */
  setUpstreamInfo?: (info: Record<string, unknown>) => void
  /** What `park` answers (metriport); every request is recorded in `parks`. Without it, `park` throws. */
  park?: (opts: { key: string, timeoutSeconds: number }) => Parked
  /** Called with each `reportWait`. */
  reportWait?: (waiter: string, wait: BudgetWait | null) => void
}

/** The context method calls an adapter made, in order (`reportWait` aside: it is only a note). */
export type ContextCall = 'savePage' | 'saveCheckpoint' | 'setUpstreamInfo' | 'park'

/**
 * A job of `resource` with `params` (the adapter gets a copy), run by `adapter.run(job.ctx)`. `Checkpoint` types
 * what the test reads back from `checkpoints`.
 */
export function fakeJob<Checkpoint = unknown> (resource: string, params: Record<string, unknown> = {}, options: FakeJobOptions<Checkpoint> = {}) {
  const controller = new AbortController()
  const pages = options.pages ?? new Map<number, readonly string[]>()
  const checkpoints: Checkpoint[] = []
  const progress: Array<ProgressUpdate | undefined> = []
  const upstreamInfo: Record<string, unknown> = {}
  const parks: Array<{ key: string, timeoutSeconds: number }> = []
  const calls: ContextCall[] = []

  const record = (checkpoint: unknown, update: ProgressUpdate | undefined, page: number | null): void => {
    const cp = structuredClone(checkpoint) as Checkpoint
    checkpoints.push(cp)
    progress.push(update)
    options.afterCheckpoint?.(cp, { page, n: checkpoints.length })
  }

  const ctx: JobContext = {
    jobId: 'job-1',
    clientId: 'client-1',
    resource,
    params: structuredClone(params),
    payload: options.payload === undefined ? null : structuredClone(options.payload),
    checkpoint: options.checkpoint ?? null,
    signal: controller.signal,
    lastAttempt: options.lastAttempt ?? false,
    log: pino({ level: 'silent' }),
    async savePage (page: number, records: PageRecords, checkpoint: unknown, update?: ProgressUpdate) {
      calls.push('savePage')
      controller.signal.throwIfAborted()
      if (options.refusePages !== undefined) throw new Error(options.refusePages)
      if (options.saveMs !== undefined) await new Promise(resolve => setTimeout(resolve, options.saveMs?.(page)))
      if (!pages.has(page)) pages.set(page, recordTexts(records))
      record(checkpoint, update, page)
    },
    async saveCheckpoint (checkpoint: unknown, update?: ProgressUpdate) {
      calls.push('saveCheckpoint')
      controller.signal.throwIfAborted()
      record(checkpoint, update, null)
    },
    async setUpstreamInfo (info) {
      calls.push('setUpstreamInfo')
      Object.assign(upstreamInfo, structuredClone(info))
      options.setUpstreamInfo?.(info)
    },
    async park (opts) {
      calls.push('park')
      parks.push(opts)
      if (options.park === undefined) throw new Error(`a ${resource} job of this test does not wait for a webhook`)
      return options.park(opts)
    },
    reportWait (waiter, wait) { options.reportWait?.(waiter, wait) },
  }

  /** Stored records in result order: page, then position. */
  const records = (): string[] => [...pages.keys()].sort((a, b) => a - b).flatMap(p => pages.get(p) ?? [])
  return { ctx, controller, pages, checkpoints, progress, upstreamInfo, parks, calls, records }
}
