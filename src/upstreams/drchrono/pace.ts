/**
 * When to poll a DrChrono list's uuid. Every poll costs one request of DrChrono's hourly budget (500 per
 * application), and polling late costs time, so the pace aims at one poll per page, just after the page is ready.
 *
 * It learns from the pages of one job, which take about as long as each other to generate. Each page read
 * tells an interval for its readiness, counted from its POST's answer: ready after the last poll that found it
 * "In progress" was sent (lo), and by the time the poll that found it Complete was answered (hi). The pace keeps
 * one estimate interval: a page that agrees with it narrows it to what both allow; a page that does not (pages
 * got slower or quicker) widens it to cover both. Then
 * - the first poll goes at the estimate's `hi`: a page as quick as the earlier ones is ready then;
 * - while the estimate is wide, one page at a time polls at its middle instead (a probe): one poll risked to halve
 *   the interval, so lateness shrinks to a small share of the generation time within a few pages;
 * - every {@link REPROBE_EVERY} pages, one page polls well before `hi`, so a list whose pages became quicker is noticed;
 * - a page still "In progress" after `hi` is slower than the others: it polls again after a share of `hi`,
 *   doubling each time (capped by `pollMaxMs`), as a slow list should be polled.
 * It reads nothing but the two documented answers, "In progress" and Complete, and the clock.
 */

/** The waits of the pace: the gateway's poll settings. */
export interface PaceOptions {
  /** No first poll before this long after the POST's answer; also the wait after an "In progress" while nothing is known. */
  pollInitialMs: number
  /** No wait is longer. */
  pollMaxMs: number
}

/** When a page became ready, in ms after its POST's answer: after `lo`, by `hi`. */
export interface ReadyInterval {
  lo: number
  hi: number
}

/** How wide an estimate may be (as a share of its `hi`) before a probe narrows it. */
export const TOLERANCE = 0.15
/** Pages read without a probe before one checks whether pages became quicker. */
export const REPROBE_EVERY = 16

/**
 * The estimate after one more page. Overlapping intervals narrow to their intersection; disjoint ones widen
 * to their hull, since one of them is out of date (or the pages differ) and only probes can tell which.
 */
export function nextEstimate (estimate: ReadyInterval | undefined, page: ReadyInterval): ReadyInterval {
  if (estimate === undefined) return page
  const lo = Math.max(estimate.lo, page.lo)
  const hi = Math.min(estimate.hi, page.hi)
  if (lo < hi) return { lo, hi }
  return { lo: Math.min(estimate.lo, page.lo), hi: Math.max(estimate.hi, page.hi) }
}

/** The pace of one job's pages; one {@link PagePace} per uuid polled. */
export class GenerationPace {
  readonly #o: PaceOptions
  #estimate: ReadyInterval | undefined
  #probing = false
  #sinceProbe = 0

  constructor (o: PaceOptions) {
    this.#o = o
  }

  get options (): PaceOptions {
    return this.#o
  }

  /** The current estimate of when a page is ready; undefined until a page has been read. */
  get estimate (): ReadyInterval | undefined {
    return this.#estimate
  }

  /** Starts the polls of one uuid. */
  page (): PagePace {
    return new PagePace(this)
  }

  /** Where a first poll should probe, if one should (and none is under way); the caller then owns the probe. */
  takeProbe (elapsedMs: number): number | undefined {
    const e = this.#estimate
    if (e === undefined || this.#probing) return undefined
    const { pollInitialMs } = this.#o
    const lo = Math.max(e.lo, pollInitialMs)
    const wide = e.hi - lo > Math.max(TOLERANCE * e.hi, 2 * floorMs(this.#o))
    let at: number | undefined
    if (wide) at = (lo + e.hi) / 2
    else if (this.#sinceProbe >= REPROBE_EVERY) at = Math.max(pollInitialMs, (1 - 2 * TOLERANCE) * e.hi)
    // A page that has already waited past the probe's moment (it waited for the list's size) learns nothing from it.
    if (at === undefined || at <= elapsedMs || at >= e.hi) return undefined
    this.#probing = true
    return at
  }

  /** A page was read: `interval` says when it became ready; `probed` whether it held the probe. */
  observe (interval: ReadyInterval, probed: boolean): void {
    this.#estimate = nextEstimate(this.#estimate, interval)
    this.#sinceProbe = probed ? 0 : this.#sinceProbe + 1
  }

  /** The probe's page is done with, read or not. */
  releaseProbe (): void {
    this.#probing = false
  }
}

/** The shortest wait between two polls of one uuid, so a slow page is never polled in a burst. */
const floorMs = (o: PaceOptions): number => o.pollInitialMs / 10

/** The polls of one uuid. Times are ms after its POST's answer. */
export class PagePace {
  readonly #pace: GenerationPace
  #polls = 0
  #lastInProgressMs = 0
  /** "In progress" answers to polls sent at or after the estimate's `hi`, or with no estimate at all. */
  #late = 0
  /** This uuid's first poll was the probe; it holds the probe until it is read or dropped. */
  #probe = false
  #holdsProbe = false

  constructor (pace: GenerationPace) {
    this.#pace = pace
  }

  /** The wait before the next poll, `elapsedMs` after the POST's answer. */
  nextWaitMs (elapsedMs: number): number {
    const o = this.#pace.options
    const e = this.#pace.estimate
    let target: number
    if (this.#polls === 0) {
      const probe = this.#pace.takeProbe(elapsedMs)
      this.#probe = this.#holdsProbe = probe !== undefined
      target = Math.max(o.pollInitialMs, probe ?? e?.hi ?? 0)
    } else if (e !== undefined && e.hi - elapsedMs >= floorMs(o)) {
      target = e.hi // a probe (or an early first poll) found it in progress: the others were ready by `hi`
    } else {
      const step = e === undefined ? o.pollInitialMs : Math.max(TOLERANCE * e.hi, floorMs(o))
      const wait = step * 2 ** Math.min(Math.max(this.#late - 1, 0), 30)
      return Math.min(o.pollMaxMs, Math.max(floorMs(o), wait))
    }
    return Math.min(o.pollMaxMs, Math.max(0, target - elapsedMs))
  }

  /** A poll sent `sentMs` after the POST's answer found the page in progress. */
  inProgress (sentMs: number): void {
    this.#polls++
    this.#lastInProgressMs = sentMs
    const e = this.#pace.estimate
    if (e === undefined || sentMs >= e.hi - floorMs(this.#pace.options)) this.#late++
  }

  /** A poll answered `answeredMs` after the POST's answer found the page Complete. */
  complete (answeredMs: number): void {
    this.#polls++
    this.#pace.observe({ lo: this.#lastInProgressMs, hi: Math.max(answeredMs, this.#lastInProgressMs + 1) }, this.#probe)
    this.#release()
  }

  /** The uuid is done with: read, failed, expired or abandoned. */
  end (): void {
    this.#release()
  }

  // The probe is held until the page is read, so the next probe starts from the interval this one narrowed.
  #release (): void {
    if (this.#holdsProbe) this.#pace.releaseProbe()
    this.#holdsProbe = false
  }
}
