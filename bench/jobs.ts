/** Submitting a job and watching it to the end, as a client of the public API does. */
import type { GatewayProcess } from './gateway-process.js'

/** The parts of the job view (docs/API.md) the bench reads. */
export interface JobView {
  id: string
  status: string
  progress: { records: number, pagesDone: number, pagesTotal: number | null }
  error: { code: string, message: string } | null
  createdAt: string
  startedAt: string | null
  completedAt: string | null
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired'])

/** POST /jobs; throws unless the gateway accepted a new job. */
export async function submitJob (gw: GatewayProcess, body: unknown): Promise<JobView> {
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify(body) })
  const text = await res.text()
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${text.slice(0, 500)}`)
  return JSON.parse(text) as JobView
}

export async function getJob (gw: GatewayProcess, id: string): Promise<JobView> {
  const res = await gw.request(`/jobs/${id}`)
  const text = await res.text()
  if (res.status !== 200) throw new Error(`GET /jobs/${id} answered ${res.status}: ${text.slice(0, 500)}`)
  return JSON.parse(text) as JobView
}

/**
 * Polls GET /jobs/{id} every `pollMs` until the job is terminal; returns it with the moment (performance.now())
 * the client first saw it so. A job that did not complete is an error: its figures would mean nothing.
 */
export async function waitForJob (gw: GatewayProcess, id: string, opts: {
  pollMs: number,
  timeoutMs: number,
  onPoll?: (job: JobView) => void,
}): Promise<{ job: JobView, seenAt: number }> {
  const deadline = performance.now() + opts.timeoutMs
  for (;;) {
    const job = await getJob(gw, id)
    const seenAt = performance.now()
    opts.onPoll?.(job)
    if (TERMINAL.has(job.status)) {
      if (job.status !== 'completed') throw new Error(`job ${id} ended ${job.status}: ${job.error?.code ?? ''} ${job.error?.message ?? ''}`)
      return { job, seenAt }
    }
    if (seenAt > deadline) throw new Error(`job ${id} still ${job.status} after ${opts.timeoutMs / 1000} s (${job.progress.records} records)`)
    await new Promise(resolve => setTimeout(resolve, opts.pollMs))
  }
}

/** The job's own run time by the gateway's clock: started → completed, in seconds. */
export function serverSeconds (job: JobView): number | null {
  if (job.startedAt === null || job.completedAt === null) return null
  return (Date.parse(job.completedAt) - Date.parse(job.startedAt)) / 1000
}

/**
 * Runs a small job to completion before a measured one: a long-running gateway has its database statements,
 * upstream connections and JIT warm, and a figure should not include one process's first-request costs.
 */
export async function warmUpJob (gw: GatewayProcess, body: unknown): Promise<void> {
  const job = await submitJob(gw, body)
  await waitForJob(gw, job.id, { pollMs: 50, timeoutMs: 120_000 })
}
