/**
 * Readers that follow a running job's results wait here between reads, one waiter per reader, woken in-process by the
 * job's notifications (a page saved, the job ended or cancelled: notifications.ts), whichever replica sent them. The
 * database is not polled while the listener holds its connection; without it (lost, not started) a waiter wakes
 * every {@link FALLBACK_MS} by itself, so no reader hangs on a notification that cannot come.
 */

/** How often a waiter re-checks on its own while the listener is not connected: notifications may be missed. */
export const FALLBACK_MS = 2_000
/**
 * How often a waiter re-checks on its own while the listener is connected. A page's NOTIFY is sent after its commit,
 * and a database that fails between the two loses it: this bounds how long a reader waits for the next one then.
 */
export const SAFETY_MS = 60_000

/** One reader's waits on one job, from {@link ResultWaits.watch}: wakes that come while it reads are kept for its next wait. */
export class JobWatch {
  #woken = false
  #resolve: (() => void) | undefined

  constructor (
    readonly jobId: string,
    private readonly listening: () => boolean,
    private readonly remove: (watch: JobWatch) => void
  ) {}

  /** Something may have changed for the job (or notifications may have been missed): the next wait returns at once. */
  wake (): void {
    this.#woken = true
    this.#resolve?.()
  }

  /**
   * Returns once the job was woken since the last return (at once if it was meanwhile), after the re-check period,
   * or when `signal` aborts.
   */
  async next (signal: AbortSignal): Promise<void> {
    if (!this.#woken && !signal.aborted) {
      let timer: NodeJS.Timeout | undefined
      let onAbort: (() => void) | undefined
      await new Promise<void>(resolve => {
        this.#resolve = resolve
        timer = setTimeout(resolve, this.listening() ? SAFETY_MS : FALLBACK_MS)
        onAbort = resolve
        signal.addEventListener('abort', onAbort, { once: true })
      })
      clearTimeout(timer)
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
      this.#resolve = undefined
    }
    this.#woken = false
  }

  /** The reader is done: no more wakes. */
  close (): void {
    this.remove(this)
  }
}

/** This process's readers waiting on jobs' results, by job. */
export class ResultWaits {
  readonly #byJob = new Map<string, Set<JobWatch>>()
  #listening = false
  #closed = false

  /** A watch on the job, taken before the reader's first read so that no wake between its reads is lost. */
  watch (jobId: string): JobWatch {
    const watch = new JobWatch(jobId, () => this.#listening, w => {
      const set = this.#byJob.get(w.jobId)
      set?.delete(w)
      if (set?.size === 0) this.#byJob.delete(w.jobId)
    })
    const set = this.#byJob.get(jobId) ?? new Set()
    set.add(watch)
    this.#byJob.set(jobId, set)
    return watch
  }

  /** The job saved a page or ended: its readers read on. */
  wake (jobId: string): void {
    for (const watch of this.#byJob.get(jobId) ?? []) watch.wake()
  }

  /**
   * Whether the listener holds its connection. Every reader re-checks when this changes: a reconnect may have missed
   * notifications, and a lost connection switches waits to the fallback period.
   */
  setListening (listening: boolean): void {
    this.#listening = listening
    for (const set of this.#byJob.values()) for (const watch of set) watch.wake()
  }

  /** The process is shutting down: every reader is woken, and finds {@link closed} set. */
  close (): void {
    this.#closed = true
    for (const set of this.#byJob.values()) for (const watch of set) watch.wake()
  }

  /** Whether the process is shutting down: readers of running jobs stop following. */
  get closed (): boolean {
    return this.#closed
  }

  /** Whether waits rely on notifications (the listener is connected) rather than on the fallback period. */
  get listening (): boolean {
    return this.#listening
  }

  /** Readers waiting, for tests and metrics. */
  get size (): number {
    let n = 0
    for (const set of this.#byJob.values()) n += set.size
    return n
  }
}
