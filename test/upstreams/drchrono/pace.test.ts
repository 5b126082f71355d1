/**
 * The DrChrono poll pace as a pure class, on a virtual clock: pages of chosen generation times are polled as the
 * pace says, and the polls and the lateness are counted. No timers, so no figure here depends on the machine.
 */
import t from 'tap'
import { GenerationPace, nextEstimate, REPROBE_EVERY, type PaceOptions } from '../../../src/upstreams/drchrono/pace.js'

const DEFAULTS: PaceOptions = { pollInitialMs: 500, pollMaxMs: 10_000 }

interface Run {
  /** Polls per page (each page also costs its POST). */
  pollsPerPage: number
  /** When the last page was read, in virtual ms. */
  endMs: number
  /** Time between each page being ready and being read, over the sum of generation times. */
  lateShare: number
  /** Every wait the pace asked for after an "In progress". */
  waitsAfterInProgress: number[]
  pace: GenerationPace
}

/**
 * `ready[i]` ms after its POST's answer, page i is Complete. `concurrency` pages run at once, each starting as
 * one ends; a request takes `latencyMs` (the server reads it half way).
 */
function run (ready: readonly number[], concurrency = 4, latencyMs = 2, o: PaceOptions = DEFAULTS): Run {
  const pace = new GenerationPace(o)
  const events: Array<{ at: number, seq: number, run: () => void }> = []
  let seq = 0
  const at = (time: number, fn: () => void): void => { events.push({ at: time, seq: seq++, run: fn }) }
  let next = 0
  let polls = 0
  let late = 0
  let endMs = 0
  const waitsAfterInProgress: number[] = []
  const start = (now: number): void => {
    if (next >= ready.length) return
    const readyMs = ready[next++] as number
    const answered = now + latencyMs // the POST's answer
    const page = pace.page()
    const schedule = (from: number, afterInProgress: boolean): void => {
      const wait = page.nextWaitMs(from - answered)
      if (afterInProgress) waitsAfterInProgress.push(wait)
      at(from + wait, () => {
        const sent = from + wait
        polls++
        if (sent + latencyMs / 2 - answered >= readyMs) {
          page.complete(sent + latencyMs - answered)
          page.end()
          late += sent + latencyMs - answered - readyMs
          endMs = sent + latencyMs
          start(endMs)
        } else {
          page.inProgress(sent - answered)
          schedule(sent + latencyMs, true)
        }
      })
    }
    schedule(answered, false)
  }
  for (let i = 0; i < concurrency; i++) start(0)
  while (events.length > 0) {
    events.sort((a, b) => a.at - b.at || a.seq - b.seq)
    events.shift()?.run()
  }
  return { pollsPerPage: polls / ready.length, endMs, lateShare: late / ready.reduce((a, b) => a + b, 0), waitsAfterInProgress, pace }
}

/** A seeded PRNG, so the uneven pages are the same every run. */
function seeded (seed: number): () => number {
  let s = seed
  return () => { s = (s * 16807) % 2147483647; return s / 2147483647 }
}

t.test('the estimate narrows on agreeing pages and widens on disagreeing ones', async t => {
  t.same(nextEstimate(undefined, { lo: 500, hi: 1000 }), { lo: 500, hi: 1000 })
  t.same(nextEstimate({ lo: 500, hi: 1000 }, { lo: 750, hi: 1200 }), { lo: 750, hi: 1000 }, 'overlap: intersection')
  t.same(nextEstimate({ lo: 500, hi: 1000 }, { lo: 0, hi: 800 }), { lo: 500, hi: 800 }, 'a page read early lowers hi')
  t.same(nextEstimate({ lo: 900, hi: 1000 }, { lo: 2500, hi: 3000 }), { lo: 900, hi: 3000 }, 'a slower page: hull')
  t.same(nextEstimate({ lo: 900, hi: 1000 }, { lo: 0, hi: 600 }), { lo: 0, hi: 1000 }, 'a quicker page: hull')
})

t.test('before any page is read: the initial wait, then doubling', async t => {
  const page = new GenerationPace(DEFAULTS).page()
  const waits = [page.nextWaitMs(0)]
  for (const sent of [500, 1000, 2000, 4000]) {
    page.inProgress(sent)
    waits.push(page.nextWaitMs(sent + 1))
  }
  t.same(waits, [500, 500, 1000, 2000, 4000])
})

t.test('after a page: the first poll at the estimate, a probe when it is wide, one probe at a time', async t => {
  const pace = new GenerationPace(DEFAULTS)
  const first = pace.page()
  first.nextWaitMs(0)
  first.inProgress(500)
  first.complete(1004)
  first.end()
  t.same(pace.estimate, { lo: 500, hi: 1004 })
  const probe = pace.page()
  t.equal(probe.nextWaitMs(0), 752, 'the first page after it probes the middle of (500, 1004]')
  const other = pace.page()
  t.equal(other.nextWaitMs(0), 1004, 'the others, meanwhile, poll when the first page was ready')
  probe.inProgress(752)
  t.equal(probe.nextWaitMs(754), 250, 'a probe found in progress polls again at the estimate')
  probe.complete(1005)
  probe.end()
  t.same(pace.estimate, { lo: 752, hi: 1004 })
  t.equal(pace.page().nextWaitMs(0), 878, 'the next probe halves what is left')
  t.equal(pace.page().nextWaitMs(1200), 0, 'a page that has waited past the estimate (for the list\'s size) polls at once')

  const quick = new GenerationPace(DEFAULTS)
  quick.observe({ lo: 0, hi: 120 }, false)
  t.equal(quick.page().nextWaitMs(0), 500, 'never before pollInitialMs')
})

t.test('pages of equal generation time: about one poll per page, close to the ideal time', async t => {
  const r = run(Array(40).fill(1000))
  t.comment(`polls/page ${r.pollsPerPage.toFixed(3)}, end ${r.endMs} ms, late ${(r.lateShare * 100).toFixed(1)}%`)
  t.ok(r.pollsPerPage + 1 <= 2.5, `${(r.pollsPerPage + 1).toFixed(2)} requests per page with its POST`)
  t.ok(r.endMs <= 1.3 * 10 * 1000, `${r.endMs} ms for 10 rounds of 1 s`)
  const est = r.pace.estimate
  t.ok(est !== undefined && est.hi - est.lo <= 0.2 * est.hi, `the estimate narrowed: ${JSON.stringify(est)}`)

  // Just past a point of the initial doubling, the first pages are read late; probes win the time back.
  const awkward = run(Array(40).fill(1010))
  t.ok(awkward.pollsPerPage + 1 <= 2.5, `1010 ms pages: ${(awkward.pollsPerPage + 1).toFixed(2)} requests per page`)
  t.ok((awkward.pace.estimate?.hi ?? Infinity) <= 1.15 * 1010, `then polled at ${awkward.pace.estimate?.hi} ms`)
})

t.test('uneven pages stay affordable', async t => {
  // The wider pages vary, the more the pace trades lateness for polls; neither runs away.
  for (const [lo, hi, lateness] of [[800, 1200, 0.25], [500, 1500, 0.4]] as const) {
    const random = seeded(lo)
    const r = run(Array.from({ length: 40 }, () => lo + (hi - lo) * random()))
    t.comment(`${lo}..${hi} ms: polls/page ${r.pollsPerPage.toFixed(3)}, late ${(r.lateShare * 100).toFixed(1)}%`)
    t.ok(r.pollsPerPage <= 2, `${lo}..${hi} ms: ${r.pollsPerPage.toFixed(2)} polls per page`)
    t.ok(r.lateShare <= lateness, `${lo}..${hi} ms: pages read ${(r.lateShare * 100).toFixed(0)}% late on average`)
  }
  t.ok(run(Array(40).fill(3000)).pollsPerPage <= 1.5, 'slow pages too')
})

t.test('a slow page, and lists that change pace, are followed', async t => {
  const outlier = run(Array.from({ length: 40 }, (_, i) => (i === 10 ? 3000 : 1000)))
  t.ok((outlier.pace.estimate?.hi ?? Infinity) <= 1.15 * 1000, `one 3 s page does not slow the rest: ${JSON.stringify(outlier.pace.estimate)}`)
  t.ok(outlier.pollsPerPage <= 1.5)

  const quicker = run(Array.from({ length: 20 + 4 * REPROBE_EVERY }, (_, i) => (i < 20 ? 2000 : 1000)))
  t.ok((quicker.pace.estimate?.hi ?? Infinity) <= 1.2 * 1000, `pages that became quicker are noticed: ${JSON.stringify(quicker.pace.estimate)}`)

  const slower = run(Array.from({ length: 80 }, (_, i) => (i < 20 ? 1000 : 2000)))
  t.ok((slower.pace.estimate?.hi ?? 0) >= 2000 && (slower.pace.estimate?.hi ?? Infinity) <= 1.2 * 2000, `and slower: ${JSON.stringify(slower.pace.estimate)}`)
  t.ok(slower.pollsPerPage <= 1.5, `${slower.pollsPerPage.toFixed(2)} polls per page`)
})

t.test('never a burst: after "In progress" a page waits at least a tenth of the initial wait, at most pollMaxMs', async t => {
  const random = seeded(7)
  const r = run(Array.from({ length: 60 }, () => 200 + 4000 * random()), 4, 2)
  t.ok(r.waitsAfterInProgress.length > 0)
  t.ok(r.waitsAfterInProgress.every(w => w >= 50 && w <= 10_000), `waits from ${Math.min(...r.waitsAfterInProgress)} to ${Math.max(...r.waitsAfterInProgress)} ms`)
  const capped = run([60_000], 1, 2, { pollInitialMs: 500, pollMaxMs: 5000 })
  t.ok(capped.waitsAfterInProgress.every(w => w <= 5000), 'capped by pollMaxMs')
})
