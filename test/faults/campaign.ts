/**
 * What the fault campaign's files share: the tally each prints (`faults tried N / survived N / data lost N`),
 * the summary of the whole campaign (printed by whichever file finishes last), the documented error codes a
 * faulted job may end with, and a hang detector for jobs.
 *
 * The files run in parallel (tap's jobs), so the summary is aggregated through small JSON files in a folder
 * named after tap's process, the parent of every test file of one run.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import type { Test } from 'tap'
import { JOB_ERROR_CODES } from '../../src/domain/errors.js'

/**
 * The codes a job may fail with when an upstream misbehaves: every documented code (`JOB_ERROR_CODES`) but two.
 * `internal_error` means the gateway itself broke, and `upstream_not_configured` is a configuration matter: an
 * upstream fault must never end in either.
 */
export const UPSTREAM_FAULT_CODES: ReadonlySet<string> = new Set(
  Object.keys(JOB_ERROR_CODES).filter(code => code !== 'internal_error' && code !== 'upstream_not_configured'))

/** The fixed seed of the campaign: printed by every file, so any failure reproduces with it. */
export const CAMPAIGN_SEED = Number(process.env.FAULT_SEED ?? 20_260_524)

/** One file's counts: faults tried, runs that ended as the contract says, records lost or duplicated. */
export class Tally {
  tried = 0
  survived = 0
  lost = 0
  readonly notes: string[] = []

  /**
   * @param name the campaign file (without `.test.ts`) whose count this is
   * @param opts `campaign: false` for a tally outside the campaign (a test running the campaign's suites over an
   *   upstream of its own): asserted and printed, but not added to the campaign's summary
   */
  constructor (readonly name: string, readonly opts: { campaign: boolean } = { campaign: true }) {
    if (opts.campaign && !CAMPAIGN.includes(name)) throw new Error(`${name} is not one of the campaign's files (${CAMPAIGN.join(', ')})`)
  }

  /** One fault tried: whether the system survived it, and how many records it lost or duplicated. */
  record (what: string, outcome: { survived: boolean, lost?: number, note?: string }): void {
    this.tried++
    if (outcome.survived) this.survived++
    this.lost += outcome.lost ?? 0
    if (!outcome.survived || (outcome.lost ?? 0) > 0) this.notes.push(`${what}: ${outcome.note ?? 'did not survive'}`)
  }

  line (): string {
    return `faults tried ${this.tried} / survived ${this.survived} / data lost ${this.lost}`
  }

  /**
   * Prints this file's line, asserts it, and adds it to the campaign's summary; the file that completes the
   * campaign prints the summary line and asserts it too.
   */
  report (t: Test): void {
    for (const note of this.notes) t.comment(`not survived: ${note}`)
    t.comment(`${this.name}: ${this.line()} (seed ${CAMPAIGN_SEED})`)
    console.log(`# ${this.name}: ${this.line()}`)
    t.equal(this.lost, 0, `${this.name}: no record lost or duplicated`)
    t.equal(this.survived, this.tried, `${this.name}: every fault survived`)
    if (!this.opts.campaign) return
    const files = campaignFiles()
    const dir = join(tmpdir(), `${FOLDER_PREFIX}${process.ppid}`)
    removeStaleFolders()
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, `${this.name}.json`), JSON.stringify({ tried: this.tried, survived: this.survived, lost: this.lost }))
    // A folder left by an interrupted run whose tap process had the same pid is recognisable by its age.
    const fresh = readdirSync(dir).filter(f => f.endsWith('.json') && Date.now() - statSync(join(dir, f)).mtimeMs < STALE_MS)
    const done = fresh.map(f => basename(f, '.json')).filter(n => files.includes(n))
    const all = done.map(n => JSON.parse(readFileSync(join(dir, `${n}.json`), 'utf8')) as { tried: number, survived: number, lost: number })
    const sum = all.reduce((a, b) => ({
      tried: a.tried + b.tried,
      survived: a.survived + b.survived,
      lost: a.lost + b.lost,
    }), { tried: 0, survived: 0, lost: 0 })
    const line = `faults tried ${sum.tried} / survived ${sum.survived} / data lost ${sum.lost}`
    if (done.length < files.length) {
      t.comment(`campaign so far (${done.length} of ${files.length} files): ${line}`)
      return
    }
    console.log(`# fault campaign (${files.length} files): ${line}`)
    t.comment(`fault campaign (${files.length} files): ${line}`)
    t.equal(sum.lost, 0, 'the whole campaign lost no record')
    rmSync(dir, { recursive: true, force: true })
  }
}

const FOLDER_PREFIX = 'bulk-gateway-fault-campaign-'
const STALE_MS = 30 * 60_000

/** Folders of runs that never completed the campaign (one file run alone, an interrupted run). */
function removeStaleFolders (): void {
  for (const name of readdirSync(tmpdir()).filter(n => n.startsWith(FOLDER_PREFIX))) {
    const path = join(tmpdir(), name)
    try {
      if (Date.now() - statSync(path).mtimeMs > STALE_MS) rmSync(path, { recursive: true, force: true })
    } catch { /* another run removed it first */ }
  }
}

/** The campaign's files (without `.test.ts`): each reports a tally, and the summary waits for all of them. */
const CAMPAIGN = ['upstream-faults', 'process-kill', 'replica-takeover', 'postgres-restart', 'bad-input', 'shared-upstreams', 'token-rotation']

function campaignFiles (): string[] {
  // A file renamed without this list being updated would make the summary wait forever: fail loudly instead.
  const present = readdirSync(new URL('.', import.meta.url)).filter(f => f.endsWith('.test.ts')).map(f => f.slice(0, -'.test.ts'.length))
  const missing = CAMPAIGN.filter(name => !present.includes(name))
  if (missing.length > 0) throw new Error(`fault campaign files missing: ${missing.join(', ')}`)
  return CAMPAIGN
}

/** A job as the API shows it (the fields the campaign reads). */
export interface JobView {
  id: string
  upstream: string
  status: string
  error: { code: string, message: string } | null
  upstreamInfo: Record<string, unknown> | null
  progress: { records: number, pagesDone: number, pagesTotal: number | null }
}

/** Whether a read job view is finished; a problem (a 429 of the gateway's own rate limit, say) is not a view. */
export const isTerminal = (job: JobView): boolean => typeof job.status === 'string' && !['queued', 'running'].includes(job.status)

/**
 * The hang detector: reads the job until it is terminal; null when it is still queued or running at the
 * deadline (a hang), so the caller counts it rather than the test dying on the first one.
 */
export async function settle (read: (id: string) => Promise<JobView>, id: string, timeoutMs: number): Promise<JobView | null> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const job = await read(id)
    if (isTerminal(job)) return job
    if (Date.now() > deadline) return null
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** A job's stored records, in order, as the upstream's text. */
export { storedRecords } from '../helpers/stored-results.js'

/**
 * Records that differ between what a job stored and what the upstream holds: missing, extra (duplicates
 * included) and changed ones, position by position.
 */
export function recordsLost (stored: readonly string[], expected: readonly string[]): number {
  let differing = Math.abs(stored.length - expected.length)
  for (let i = 0; i < Math.min(stored.length, expected.length); i++) if (stored[i] !== expected[i]) differing++
  return differing
}
