/**
 * OCL's 429 under every header combination its throttling may send (Retry-After present or not; X-LimitRemaining-*
 * saying the minute is spent, the day is spent, or absent): export and changes jobs against the simulator over
 * loopback, each ending exactly, or, when only the day's quota is known to be spent, with upstream_rate_limited.
 */
import t, { type Test } from 'tap'
import { UpstreamClient } from '../../../src/upstreams/http.js'
import type { UpstreamEvent } from '../../../src/contract/upstream-events.js'
import { oclAdapter } from '../../../src/upstreams/ocl/adapter.js'
import {
  SANDBOX_OCL_TOKEN, expectedChanges, expectedExport, startOclSimulator, type OclThrottleHeaders,
} from '../../../src/upstreams/ocl/simulator/index.js'
import { CLOCK_SKEW_MS, oclThrottleWait } from '../../../src/upstreams/ocl/throttle.js'
import { UpstreamError } from '../../../src/domain/errors.js'
import { fakeJob } from '../../helpers/job-context.js'

const CIEL = { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL' } as const
const JDOE = { ownerType: 'users', owner: 'jdoe', source: 'ClinicTerms' } as const
const CHANGES = { ...CIEL, updatedSince: '2024-01-01', includeRetired: true }
const MAX_BACKOFF_MS = 10
/** The adapter's clock, pinned 50 ms before a minute starts: "until the next minute" is then 50 ms + the skew. */
const PINNED = Date.UTC(2025, 0, 1, 0, 0, 59, 950)
const NEXT_MINUTE_WAIT = 50 + CLOCK_SKEW_MS

async function setup (t: Test, throttleHeaders: OclThrottleHeaders) {
  const simulator = await startOclSimulator({ exportPolls: 1, retryAfterSeconds: 1, throttleHeaders })
  const retries: Array<Extract<UpstreamEvent, { type: 'retry' }>> = []
  const client = new UpstreamClient({ baseDelayMs: 2, maxDelayMs: MAX_BACKOFF_MS, onEvent: e => { if (e.type === 'retry') retries.push(e) } })
  t.teardown(async () => {
    await client.close()
    await simulator.close()
  })
  const adapter = oclAdapter({ baseUrl: simulator.url, token: SANDBOX_OCL_TOKEN, pollInitialMs: 1, pollMaxMs: 4, now: () => PINNED }, client)
  return { state: simulator.state, adapter, retries }
}

t.test('the wait an OCL 429 implies, from its X-LimitRemaining-* headers alone', async t => {
  const at = (ms: number) => Date.UTC(2025, 0, 1, 12, 30, 0, ms)
  t.equal(oclThrottleWait({ 'x-limitremaining-minute': '0', 'x-limitremaining-day': '9000' }, at(15_000)), 45_000 + CLOCK_SKEW_MS, 'minute spent: to the next minute')
  t.equal(oclThrottleWait({ 'x-limitremaining-minute': '0' }, at(0)), 60_000 + CLOCK_SKEW_MS, 'at a minute\'s very start, the whole minute')
  t.equal(oclThrottleWait({ 'x-limitremaining-minute': ' -1 ' }, at(59_999)), 1 + CLOCK_SKEW_MS)
  t.equal(oclThrottleWait({ 'x-limitremaining-minute': '12', 'x-limitremaining-day': '0' }, at(0)), 86_400_000, 'day spent: a day')
  t.equal(oclThrottleWait({ 'x-limitremaining-minute': '0', 'x-limitremaining-day': '0' }, at(0)), 86_400_000, 'both spent: the day decides')
  const none: Array<Record<string, string>> = [{}, { 'x-limitremaining-minute': '3', 'x-limitremaining-day': '90' }, { 'x-limitremaining-minute': 'unlimited' }, { 'x-limitremaining-day': '' }]
  for (const headers of none) {
    t.equal(oclThrottleWait(headers, at(0)), undefined, `${JSON.stringify(headers)}: no wait implied`)
  }
})

const SETTINGS: OclThrottleHeaders[] = [true, false].flatMap(retryAfter =>
  (['minute', 'day', 'absent'] as const).map(limitRemaining => ({ retryAfter, limitRemaining })))

/** Where the one 429 of each job lands: the export GET, the export POST (after one GET), a list GET. */
const JOBS = [
  { name: 'export (429 on its GET)', resource: 'export', params: { ...JDOE, version: 'v1.0' }, after: 0, want: () => expectedExport({}, { ...JDOE, version: 'v1.0' }) },
  { name: 'export (429 on its POST)', resource: 'export', params: { ...JDOE, version: 'v1.0' }, after: 1, want: () => expectedExport({}, { ...JDOE, version: 'v1.0' }) },
  { name: 'changes', resource: 'changes', params: CHANGES, after: 0, want: () => expectedChanges({}, { ...CIEL, sinceMs: Date.parse('2024-01-01T00:00:00Z'), includeRetired: true }) },
] as const

t.test('every header combination: jobs complete exactly, waiting as the headers say; a spent day fails fast', async t => {
  for (const headers of SETTINGS) {
    const { state, adapter, retries } = await setup(t, headers)
    for (const job of JOBS) {
      const name = `${JSON.stringify(headers)} ${job.name}`
      state.reset()
      retries.length = 0
      state.throttleNext(1, { after: job.after })
      const fake = fakeJob(job.resource, job.params)
      const ran = await adapter.run(fake.ctx).then(() => null, (e: unknown) => e)
      t.equal(state.stats.throttled, 1, `${name}: the 429 was served`)
      const waits = retries.filter(r => r.reason === '429').map(r => r.delayMs)
      if (!headers.retryAfter && headers.limitRemaining === 'day') {
        t.ok(ran instanceof UpstreamError, `${name}: fails`)
        t.match(ran, { code: 'upstream_rate_limited', upstreamStatus: 429, message: /asked to wait 86400 s/ }, `${name}: upstream_rate_limited at once`)
        t.same(waits, [], `${name}: no retry against a spent day`)
        continue
      }
      t.equal(ran, null, `${name}: completes`)
      const want = job.want()
      const got = fake.records()
      t.equal(got.length, want.length, `${name}: ${want.length} records`)
      t.equal(got.findIndex((r, i) => r !== want[i]), -1, `${name}: exact records in order`)
      if (headers.retryAfter) t.same(waits, [1000], `${name}: Retry-After decides the wait`)
      else if (headers.limitRemaining === 'minute') t.same(waits, [NEXT_MINUTE_WAIT], `${name}: waits for the next minute`)
      else t.ok(waits.length === 1 && (waits[0] as number) <= MAX_BACKOFF_MS, `${name}: the client's own backoff (${waits})`)
    }
  }
})
