/**
 * `watch`: polls `GET /jobs/{id}` until the job ends, as the API asks (its `Retry-After`, 1 s by default), and
 * shows its progress: a bar redrawn in place on a terminal, a plain line per change otherwise (a log, a pipe).
 * Exits with the job's outcome: 0 completed, 1 failed, cancelled or expired.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import progress from 'cli-progress'
import { jobPath, type GatewayClient } from './client.js'
import type { ExitCode } from './exit.js'
import { exitFor, hasEnded, outcomeLine, progressLine, type JobView } from './job-view.js'

export interface WatchOptions {
  json?: boolean
  /** Seconds between polls; by default the job's `Retry-After` (1 s queued, 2 s running), else 1 s. */
  interval?: number
}

export interface JobRead { job: JobView, text: string, xProgress: string | null, retryAfter: number | null }

/** The job's view, its bytes as sent, and the headers that say how it goes and when to ask again. */
export async function readJob (client: GatewayClient, id: string, signal?: AbortSignal): Promise<JobRead> {
  const res = await client.request('GET', jobPath(id), { signal })
  const text = await res.text()
  const retryAfter = Number(res.headers.get('retry-after'))
  return { job: JSON.parse(text) as JobView, text, xProgress: res.headers.get('x-progress'), retryAfter: retryAfter > 0 ? retryAfter : null }
}

/** A bar on the terminal, or plain lines when stdout is not one; nothing with --json. */
function display (json: boolean): { show (job: JobView, xProgress: string | null): void, stop (): void } {
  if (json) return { show () {}, stop () {} }
  if (process.stdout.isTTY !== true) {
    let last = ''
    return {
      show (job, xProgress) {
        const line = progressLine(job, xProgress)
        if (line !== last) process.stdout.write(line + '\n')
        last = line
      },
      stop () {},
    }
  }
  const bar = new progress.SingleBar({
    stream: process.stdout,
    format: '{bar} {percentage}% | {status} | {detail}',
    barsize: 30,
    hideCursor: true,
    clearOnComplete: false,
  }, progress.Presets.shades_classic)
  let started = false
  return {
    show (job, xProgress) {
      const payload = { status: job.status, detail: xProgress ?? `${job.progress.records} records` }
      const value = job.status === 'completed' ? 100 : job.progress.percent ?? 0
      if (!started) bar.start(100, value, payload)
      else bar.update(value, payload)
      started = true
    },
    stop () {
      if (started) bar.stop()
      started = false
    },
  }
}

export async function watch (client: GatewayClient, id: string, opts: WatchOptions, signal: AbortSignal): Promise<ExitCode> {
  const view = display(opts.json === true)
  try {
    for (;;) {
      const { job, text, xProgress, retryAfter } = await readJob(client, id, signal)
      view.show(job, xProgress)
      if (hasEnded(job)) {
        view.stop()
        process.stdout.write(opts.json === true ? text.trimEnd() + '\n' : outcomeLine(job) + '\n')
        return exitFor(job)
      }
      await sleep((opts.interval ?? retryAfter ?? 1) * 1000, undefined, { signal })
    }
  } finally {
    view.stop()
  }
}
