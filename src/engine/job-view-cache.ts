/**
 * A per-process cache of terminal jobs' views (completed, failed, cancelled), kept as the JSON text
 * GET /jobs/{id} sends, so reading a finished job costs no database round trip.
 *
 * Such a view changes only when a DELETE expires a completed job (its status becomes `expired`) and when a
 * job reaches `expiresAt` (a completed one reads `expired` from then on, and every one's params, upstreamInfo
 * and error message read null). So an entry goes:
 * - when this process expires the job (JobService.cancel), and when a `changed` notification says another
 *   replica did;
 * - once the job's `expiresAt` has come: the view then comes from the database again, which answers it
 *   expired and erased, as it would without a cache. The database judges that on its own clock, which this process's may
 *   not match, so the moment is not read off `expiresAt` with this process's clock: the read tells how many
 *   milliseconds the job had left by the database's clock, counted from a time taken before the read (so an
 *   entry may go a little early, never late);
 * - after `maxAgeMs` at the latest, which bounds what a notification lost with a dying connection could cost;
 * - all at once whenever the LISTEN connection goes down or comes back. While it is down the cache is off:
 *   other replicas' invalidations could not arrive.
 *
 * An entry belongs to the client that owns the job: any other client misses and gets the database's answer (404).
 * Least recently used entries go first beyond `maxEntries` or `maxChars`.
 */
import type { JobStatus } from '../generated/prisma/client.js'

export interface JobViewCacheLimits {
  maxEntries: number
  /** Total length of the cached texts (a JS string holds 1 or 2 bytes per character). */
  maxChars: number
  /** A larger view (long params or upstreamInfo) is not cached. */
  maxEntryChars: number
  maxAgeMs: number
}

export const defaultJobViewCacheLimits: JobViewCacheLimits = {
  maxEntries: 10_000,
  maxChars: 8_000_000,
  maxEntryChars: 64_000,
  maxAgeMs: 60_000,
}

/** The fields of a job that decide whether, and for how long, its view may be cached. */
export interface CacheableJob {
  id: string
  clientId: string
  status: JobStatus
  /** Milliseconds the job had left until `expiresAt` when it was read, by the database's clock; null without one. */
  msToExpiry: number | null
}

/** Taken before a database read whose result may be passed to set(). */
export interface ReadStart {
  generation: number
  /** This process's clock at that moment: `msToExpiry` counts from no earlier than this. */
  at: number
}

interface Entry { clientId: string, body: string, validUntil: number }

export class JobViewCache {
  /** By job id (lowercase, as PostgreSQL prints a uuid); a Map iterates in insertion order: least recently used first. */
  readonly #entries = new Map<string, Entry>()
  #chars = 0
  /** Moves on every invalidation, so a read that overlapped one is not cached (see set). */
  #generation = 0
  #listening = false

  constructor (
    private readonly limits: JobViewCacheLimits = defaultJobViewCacheLimits,
    private readonly now: () => number = Date.now
  ) {}

  /** The view cached for this client's job, or undefined (not cached, stale, or another client's job). */
  get (clientId: string, jobId: string): string | undefined {
    if (this.#entries.size === 0) return undefined
    const key = jobId.toLowerCase()
    const entry = this.#entries.get(key)
    if (entry === undefined || entry.clientId !== clientId) return undefined
    if (this.now() >= entry.validUntil) {
      this.#remove(key, entry)
      return undefined
    }
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    return entry.body
  }

  /** Taken before the database read whose result may be passed to set(). */
  generation (): ReadStart {
    return { generation: this.#generation, at: this.now() }
  }

  /**
   * Keeps `body`, the view of `job` as read from the database after generation() gave `since`, if the job is
   * terminal and nothing was invalidated meanwhile: an invalidation that arrived during the read may concern
   * this very job, and the row read may predate it.
   */
  set (since: ReadStart, job: CacheableJob, body: string): void {
    if (!this.#listening || since.generation !== this.#generation || body.length > this.limits.maxEntryChars) return
    const validUntil = this.#validUntil(job, since.at)
    if (validUntil === null) return
    const key = job.id.toLowerCase()
    const old = this.#entries.get(key)
    if (old !== undefined) this.#remove(key, old)
    this.#entries.set(key, { clientId: job.clientId, body, validUntil })
    this.#chars += body.length
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size <= this.limits.maxEntries && this.#chars <= this.limits.maxChars) break
      this.#remove(oldest, entry)
    }
  }

  /** The job's view changed (or may have): forget it. */
  invalidate (jobId: string): void {
    this.#generation++
    const key = jobId.toLowerCase()
    const entry = this.#entries.get(key)
    if (entry !== undefined) this.#remove(key, entry)
  }

  /** The LISTEN connection is up (true) or down (false). Either way nothing cached before can be trusted. */
  setListening (listening: boolean): void {
    this.#listening = listening
    this.#generation++
    this.#entries.clear()
    this.#chars = 0
  }

  get size (): number {
    return this.#entries.size
  }

  /**
   * Until when (ms since the epoch, this process's clock) the job's view holds, or null when it may change at any
   * moment. A finished job's holds until its expiry: `msToExpiry` after `readAt`, so on the database's clock.
   */
  #validUntil (job: CacheableJob, readAt: number): number | null {
    const now = this.now()
    const latest = now + this.limits.maxAgeMs
    switch (job.status) {
      // At expiresAt any finished job's view changes: completed reads expired, and params, upstreamInfo and the
      // error message read null (erased).
      case 'failed':
      case 'cancelled':
      case 'completed': {
        if (job.msToExpiry === null) return job.status === 'completed' ? null : latest
        const expiry = readAt + job.msToExpiry
        return expiry > now ? Math.min(expiry, latest) : null
      }
      default:
        return null
    }
  }

  #remove (key: string, entry: Entry): void {
    this.#entries.delete(key)
    this.#chars -= entry.body.length
  }
}
