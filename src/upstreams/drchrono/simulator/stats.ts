/**
 * What the DrChrono simulator counts, and how it refuses a page past the end of a list: the vocabulary tests
 * read the simulator with.
 */
import { ADMISSION_STATS } from '../../simulator-kit/admission.js'
import { byKey } from '../../simulator-kit/stats.js'

/**
 * How the simulator answers a page past the list's last one. DrChrono's answer is undocumented (docs/UPSTREAMS.md):
 * - `poll-404`: the POST is accepted (201 + uuid); polling that uuid answers 404 `{"detail":"Invalid page."}` once
 *   the list is built. DRF's paginator refuses that way, and DrChrono answers the POST before building the list.
 * - `post-404`: the POST itself answers 404 `{"detail":"Invalid page."}`.
 * - `complete-empty`: the poll answers 200 Complete, `results: []`, pagination telling the real size.
 * - `failed-500`: the poll answers 500 `{"status":"Failed"}` with the wording of any failed generation; a new
 *   POST fails the same way.
 */
export type PastEndMode = 'poll-404' | 'post-404' | 'complete-empty' | 'failed-500'

/**
 * The body of a poll while its list is generated. DrChrono documents `{"status":"In progress","uuid"}`, but not
 * exactly (docs/UPSTREAMS.md): `capitalised` "In Progress", `pending` a status word of another family, `no-status` only
 * a `detail`.
 */
export type InProgressBody = 'documented' | 'capitalised' | 'pending' | 'no-status'

export const IN_PROGRESS_BODIES: readonly InProgressBody[] = ['documented', 'capitalised', 'pending', 'no-status']

/** Every {@link PastEndMode}, for tests that try them all. */
export const PAST_END_MODES: readonly PastEndMode[] = ['poll-404', 'post-404', 'complete-empty', 'failed-500']

/** The simulator's counters at start; reset() brings them back. */
export const STATS = {
  /** Accepted POSTs (new uuids) by `${resource}:${page}`, pages past the end included when their POST is accepted. */
  posts: byKey(),
  /** GETs past authentication and injected faults. */
  gets: 0,
  /**
   * Every /api request, whatever it was answered (401, 429 and 5xx included: DrChrono counts them against the
   * hourly budget too), by `${resource}:${page}`: a POST by its `page` (1 when absent), a GET by its uuid's page,
   * `${resource}:?` when that is unknown (a malformed page, a uuid the simulator never issued).
   */
  requests: byKey(),
  /**
   * Requests about a page past the list's last one, past authentication and injected faults: its POSTs and the
   * polls of its uuids (dead ones included), by `${resource}:${page}`.
   */
  pastEnd: byKey(),
  ...ADMISSION_STATS,
  generationErrors: 0,
  /** GETs answered 404 "Invalid uuid specified". */
  invalidUuids: 0,
  /** Answers 404 "Invalid page." (past the last page: a POST or a poll), by `${resource}:${page}`. */
  invalidPages: byKey(),
  tokenRefreshes: 0,
  failedRefreshes: 0,
  /** The most /api requests that arrived within any rolling second, refused ones included. */
  peakPerSecond: 0,
}

export type SimulatorStats = typeof STATS
