/**
 * LISTEN/NOTIFY between gateway processes on one database: a new job wakes idle workers at once (polling
 * is only the fallback), a cancel reaches the worker that runs the job, wherever it is, a finished job's
 * changed view reaches every replica's cache of views (job-view-cache.ts), and a saved page or a job's end wakes
 * the readers that follow the job's results (result-waits.ts), on whichever replica they are.
 */
import pg from 'pg'
import type { Logger } from 'pino'
import { sleep } from '../lib/time.js'

const channel = 'bulk_gateway_jobs'

export async function notifyNewJob (pool: pg.Pool): Promise<void> {
  await pool.query('SELECT pg_notify($1, $2)', [channel, 'new'])
}

export async function notifyCancel (pool: pg.Pool, jobId: string): Promise<void> {
  await pool.query('SELECT pg_notify($1, $2)', [channel, `cancel:${jobId}`])
}

/** Finished jobs' views changed (a DELETE or a sweep expired them): replicas drop their cached copies. One statement. */
export async function notifyJobsChanged (pool: pg.Pool, jobIds: readonly string[]): Promise<void> {
  if (jobIds.length === 0) return
  await pool.query("SELECT pg_notify($1, 'changed:' || id) FROM unnest($2::text[]) AS id", [channel, jobIds])
}

/**
 * A page of the job was saved (sent right after its commit): readers following the job read on. One per page, never
 * per record.
 */
export async function notifyPageSaved (pool: pg.Pool, jobId: string): Promise<void> {
  await pool.query('SELECT pg_notify($1, $2)', [channel, `saved:${jobId}`])
}

/** The jobs ended (completed or failed; a cancel says `cancel:`): readers following them finish. One statement. */
export async function notifyJobsEnded (pool: pg.Pool, jobIds: readonly string[]): Promise<void> {
  if (jobIds.length === 0) return
  await pool.query("SELECT pg_notify($1, 'ended:' || id) FROM unnest($2::text[]) AS id", [channel, jobIds])
}

/**
 * What the listener reports: a new job somewhere, the cancel of one job, a change of a finished job's view, a page
 * saved, a job ended, and whether it is listening at all (`connected` once LISTEN holds, `disconnected` when that connection is lost or
 * stopped). Between a `disconnected` and the next `connected`, notifications may have been missed.
 */
export type JobNotification =
  | { kind: 'new' }
  | { kind: 'cancel', jobId: string }
  | { kind: 'changed', jobId: string }
  | { kind: 'saved', jobId: string }
  | { kind: 'ended', jobId: string }
  | { kind: 'connected' }
  | { kind: 'disconnected' }

/**
 * Holds one dedicated connection in LISTEN and reconnects with backoff when it drops. While disconnected
 * nothing is lost for good: workers still poll, and heartbeats notice cancelled jobs.
 */
export class JobListener {
  private client: pg.Client | null = null
  private readonly stopped = new AbortController()
  // Made once, before any stop: a listener added to an already-aborted signal would never fire, and a stop()
  // that lands while the connection is being opened would then wait forever.
  private readonly whenStopped = new Promise<void>(resolve => this.stopped.signal.addEventListener('abort', () => resolve(), { once: true }))
  private loop: Promise<void> | null = null

  constructor (
    private readonly connectionString: string,
    private readonly onNotification: (n: JobNotification) => void,
    private readonly log: Logger
  ) {}

  start (): void {
    this.loop ??= this.run()
  }

  private async run (): Promise<void> {
    let failures = 0
    while (!this.stopped.signal.aborted) {
      const client = new pg.Client({ connectionString: this.connectionString })
      const lost = new Promise<void>(resolve => {
        client.on('error', () => resolve())
        client.on('end', () => resolve())
      })
      let listening = false
      try {
        await client.connect()
        client.on('notification', msg => this.dispatch(msg.payload))
        await client.query(`LISTEN ${channel}`)
        this.client = client
        failures = 0
        listening = true
        this.onNotification({ kind: 'connected' })
        // A reconnect may have missed notifications: report a wake-up so workers look for jobs.
        this.onNotification({ kind: 'new' })
        await Promise.race([lost, this.whenStopped])
      } catch (err) {
        failures++
        this.log.warn({ err: (err as Error).message }, 'job listener could not connect; retrying')
      } finally {
        this.client = null
        if (listening) this.onNotification({ kind: 'disconnected' })
        await client.end().catch(() => {})
      }
      if (!this.stopped.signal.aborted) await sleep(Math.min(200 * 2 ** failures, 5000), this.stopped.signal).catch(() => {})
    }
  }

  private dispatch (payload: string | undefined): void {
    if (payload === 'new') this.onNotification({ kind: 'new' })
    else if (payload?.startsWith('cancel:') === true) this.onNotification({ kind: 'cancel', jobId: payload.slice(7) })
    else if (payload?.startsWith('changed:') === true) this.onNotification({ kind: 'changed', jobId: payload.slice(8) })
    else if (payload?.startsWith('saved:') === true) this.onNotification({ kind: 'saved', jobId: payload.slice(6) })
    else if (payload?.startsWith('ended:') === true) this.onNotification({ kind: 'ended', jobId: payload.slice(6) })
  }

  async stop (): Promise<void> {
    this.stopped.abort()
    await this.loop
  }
}
