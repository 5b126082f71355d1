/**
 * The job view as the command line reads it (docs/API.md, "Read a job"), and how it is told to a person. The
 * command line declares only the fields it uses; `--json` prints the gateway's own bytes, never this type.
 */
import { EXIT, type ExitCode } from './exit.js'

/** The fields of a job view that the command line reads. */
export interface JobView {
  id: string
  upstream: string
  resource: string
  status: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'expired'
  progress: { records: number, pagesDone: number | null, pagesTotal: number | null, percent: number | null, succeeded: number | null, failed: number | null }
  error: { code: string, message: string | null, upstreamStatus: number | null } | null
  createdAt: string
  completedAt: string | null
  expiresAt: string | null
}

/** Whether the job has ended: nothing about it changes any more but its expiry. */
export const hasEnded = (job: JobView): boolean => job.status !== 'queued' && job.status !== 'running'

/** The exit code a job's state gives `status` and `watch`: 1 once it failed, was cancelled or expired. */
export function exitFor (job: JobView): ExitCode {
  return job.status === 'failed' || job.status === 'cancelled' || job.status === 'expired' ? EXIT.job : EXIT.ok
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

/** One line about the job's progress: the gateway's X-Progress while it runs, else its counts. */
export function progressLine (job: JobView, xProgress?: string | null): string {
  const p = job.progress
  const parts: string[] = [job.status]
  if (p.percent !== null) parts.push(`${p.percent}%`)
  if (xProgress !== undefined && xProgress !== null && xProgress !== '') parts.push(xProgress)
  else {
    const pages = p.pagesDone === null ? null : p.pagesTotal === null ? `page ${p.pagesDone}` : `page ${p.pagesDone} of ${p.pagesTotal}`
    parts.push([pages, plural(p.records, 'record')].filter(s => s !== null).join(', '))
    if (p.succeeded !== null || p.failed !== null) parts.push(`${p.succeeded ?? 0} succeeded, ${p.failed ?? 0} failed`)
  }
  return parts.join(' | ')
}

/** The last line of `watch` and `status`: how the job ended (or stands), with its error when it failed. */
export function outcomeLine (job: JobView): string {
  const head = `job ${job.id} ${job.status}`
  if (job.error !== null) {
    const status = job.error.upstreamStatus === null ? '' : ` (upstream status ${job.error.upstreamStatus})`
    return `${head}: ${job.error.code}${status}${job.error.message === null ? '' : `: ${job.error.message}`}`
  }
  if (job.status === 'completed') return `${head}: ${plural(job.progress.records, 'record')}, readable until ${job.expiresAt ?? 'its expiry'}`
  return `${head}: ${plural(job.progress.records, 'record')} so far`
}

/** `status`: a few labelled lines. */
export function statusText (job: JobView, xProgress: string | null): string {
  const rows: Array<[string, string | null]> = [
    ['id', job.id],
    ['job', `${job.upstream} ${job.resource}`],
    ['status', job.status],
    ['progress', progressLine(job, xProgress)],
    ['error', job.error === null ? null : `${job.error.code}${job.error.message === null ? '' : `: ${job.error.message}`}`],
    ['created', job.createdAt],
    ['ended', job.completedAt],
    ['expires', job.expiresAt],
  ]
  return rows.filter(([, v]) => v !== null).map(([k, v]) => `${k.padEnd(9)}${v}`).join('\n') + '\n'
}

/** `list`: one line per job. */
export function listText (jobs: JobView[]): string {
  if (jobs.length === 0) return 'no jobs\n'
  return jobs.map(j => [
    j.id, j.status.padEnd(9), `${j.upstream}/${j.resource}`.padEnd(32),
    (j.progress.percent === null ? '-' : `${j.progress.percent}%`).padStart(4), String(j.progress.records).padStart(8), j.createdAt,
  ].join('  ')).join('\n') + '\n'
}
