/**
 * Fault campaign, upstream half (run by upstream-faults.test.ts over the built-in registry, and by
 * test/upstreams/extra-upstream.test.ts over a test's own): every upstream's simulator misbehaves on the wire (5xx, 429 bursts, answers
 * that never come or stop half-way, connection resets, truncated and invalid JSON, valid JSON of the wrong
 * shape), and every job must end either completed with exactly the simulator's records or failed with a
 * stable error code, never hang, and never serve partial records as a result.
 *
 * The gateway is the real app (API, database, webhook route); its jobs run on the real engine Worker, given an
 * upstream client with short timeouts and backoff (the gateway's own waits 30 s per attempt) so that a hung
 * upstream costs seconds here.
 */
import { pino } from 'pino'
import type { Test } from 'tap'
import { Worker } from '../../src/engine/worker.js'
import { UpstreamClient } from '../../src/upstreams/http.js'
import type { WireFaultKind } from '../../src/upstreams/simulator-kit/wire-faults.js'
import type { Registry } from '../../src/upstreams/registry.js'
import type { FaultTarget } from '../../src/upstreams/simulator-kit/fault-target.js'
import type { UpstreamAdapter } from '../../src/contract/adapter.js'
import { startGateway } from '../helpers/gateway.js'
import { CAMPAIGN_SEED, Tally, UPSTREAM_FAULT_CODES, recordsLost, settle, storedRecords, type JobView } from './campaign.js'

/** Per attempt; undici checks about once a second, so a hung answer costs 4–5 s. */
const TIMEOUT_MS = 4000
/** A job still running after this has hung. */
const HANG_AFTER_MS = 90_000

/** The gateway's API and database, with the engine's Worker running jobs through a short-timeout client. */
async function campaignGateway (t: Test, registry: Registry, only: readonly string[], env: Record<string, string>) {
  // Every upstream's jobs at once, for one client: more than MAX_ACTIVE_JOBS_PER_CLIENT's default allows.
  const gw = await startGateway(t, { registry, env: { ...env, RATE_LIMIT_MAX: '0', MAX_ACTIVE_JOBS_PER_CLIENT: '0' }, startWorkers: false, logLevel: 'warn' })
  const client = new UpstreamClient({ timeoutMs: TIMEOUT_MS, baseDelayMs: 20, maxDelayMs: 250 })
  const adapters = new Map<string, UpstreamAdapter>(registry.upstreams.filter(u => only.includes(u.name)).map(u =>
    [u.name, u.createAdapter(gw.app.upstreams.settingsFor(u.name), client, gw.app.upstreams.services)]))
  const logs: string[] = []
  const log = pino({ level: 'warn' }, { write: (line: string) => { logs.push(line) } })
  const worker = new Worker(gw.app.db.pool, name => adapters.get(name), {
    concurrency: 8, leaseSeconds: 30, pollSeconds: 1, maxAttempts: 3, ttlSeconds: 3600, shutdownTimeoutMs: 5000,
  }, log)
  worker.start()
  const stop = async () => { await worker.stop(); await client.close() }
  t.teardown(stop)
  return { gw, worker, logs, stop }
}

type Campaign = Awaited<ReturnType<typeof campaignGateway>>

/** How one faulted job ended, checked against the contract. */
interface Verdict {
  job: JobView | null
  survived: boolean
  lost: number
  note: string
  /** A failed read job whose results answered 200 with its partial records (docs/API.md: 409). */
  servedPartial: boolean
}

async function runJob (c: Campaign, target: FaultTarget, body: Record<string, unknown>): Promise<Verdict> {
  const res = await c.gw.request('/jobs', { method: 'POST', body: JSON.stringify(body) })
  if (res.status !== 202) return { job: null, survived: false, lost: 0, note: `POST /jobs answered ${res.status}`, servedPartial: false }
  const { id } = await res.json() as { id: string }
  c.worker.wake()
  const job = await settle(async jobId => await (await c.gw.request(`/jobs/${jobId}`)).json() as JobView, id, HANG_AFTER_MS)
  if (job === null) return { job, survived: false, lost: 0, note: `job ${id} hung (still running after ${HANG_AFTER_MS} ms)`, servedPartial: false }
  const stored = await storedRecords(c.gw.databaseUrl, id)
  const known = target.expected(job, body, stored)
  const expected = known ?? []
  if (job.status === 'completed') {
    // What a client reads is what was stored: checked through the API too.
    const ndjson = await (await c.gw.request(`/jobs/${id}/results`, { headers: { accept: 'application/x-ndjson' } })).text()
    const served = ndjson === '' ? [] : ndjson.slice(0, -1).split('\n')
    const lost = Math.max(recordsLost(stored, expected), recordsLost(served, expected))
    const complete = known !== null && lost === 0
    const note = known === null ? 'completed, but the simulator holds nothing for it' : complete ? 'completed, exact' : `completed with ${lost} record(s) differing from the simulator's ${expected.length}`
    return { job, survived: complete, lost, note, servedPartial: false }
  }
  // A failed job may have stored some pages: they must be the upstream's records, none twice.
  const left = [...expected]
  const corrupt = stored.filter(r => { const i = left.indexOf(r); if (i < 0) return true; left.splice(i, 1); return false }).length
  const code = job.error?.code ?? '(none)'
  const stable = job.status === 'failed' && UPSTREAM_FAULT_CODES.has(code)
  // Partial records must not be served as if they were the result (docs/API.md: results of a failed read job are 409).
  const results = await c.gw.request(`/jobs/${id}/results`)
  const servedPartial = !target.keepsFailedRecords && results.status === 200
  const note = `${job.status} ${code}${corrupt > 0 ? `, ${corrupt} stored record(s) not the upstream's` : ''}${servedPartial ? ', its partial records served by GET …/results with 200' : ''}`
  return { job, survived: stable && corrupt === 0 && !servedPartial, lost: corrupt, note, servedPartial }
}

/** One fault kind armed on the job's first request(s), per upstream: what the job must end with. */
const MATRIX: Array<{ kind: WireFaultKind, n: number }> = [
  { kind: 'unavailable', n: 3 }, { kind: 'throttle', n: 3 }, { kind: 'hang', n: 1 }, { kind: 'stall', n: 1 },
  { kind: 'reset', n: 1 }, { kind: 'truncate', n: 1 }, { kind: 'garble', n: 1 }, { kind: 'wrongShape', n: 1 },
]

/**
 * Retried faults end in a completed job, answers that make no sense in invalid_upstream_response, unless the
 * upstream's protocol says otherwise (its target's `outcomes`: Clinia's bulk submit is not idempotent, so an
 * answer lost after it was sent fails the job rather than send it twice).
 */
function predicted (target: FaultTarget, kind: WireFaultKind): string {
  const own = target.outcomes?.[kind]
  if (own !== undefined) return own
  return ['truncate', 'garble', 'wrongShape'].includes(kind) ? 'failed invalid_upstream_response' : 'completed'
}

/** Every upstream of the registry served by its own fault target, each with its own seed; closed at the test's end. */
async function startTargets (t: Test, registry: Registry, seed: number, only: readonly string[]): Promise<FaultTarget[]> {
  const targets: FaultTarget[] = []
  t.teardown(async () => { for (const target of targets) await target.close() })
  for (const [i, upstream] of registry.upstreams.entries()) {
    if (only.includes(upstream.name)) targets.push(await upstream.simulator.faultTarget(seed + i + 1))
  }
  return targets
}

const outcomeOf = (v: Verdict): string => v.job === null ? 'none' : v.job.status === 'completed' ? 'completed' : `${v.job.status} ${v.job.error?.code ?? ''}`

/**
 * The campaign over the upstreams of `registry` (or `only` some of them), side by side, counted in `tally` (the
 * campaign file's own by default).
 */
export async function runUpstreamCampaign (
  t: Test, registry: Registry, opts: { only?: readonly string[], tally?: Tally } = {}
): Promise<void> {
  const only = opts.only ?? registry.names
  t.comment(`seed ${CAMPAIGN_SEED} (set FAULT_SEED to replay another)`)
  const started = Date.now()
  const targets = await startTargets(t, registry, CAMPAIGN_SEED, only)
  t.same(targets.map(x => x.name), only, 'each upstream fired at is a target, under its own name')
  const c = await campaignGateway(t, registry, only, Object.assign({}, ...targets.map(x => x.env)) as Record<string, string>)
  for (const target of targets) target.connect?.(c.gw.url)
  const setup = { targets }
  const tally = opts.tally ?? new Tally('upstream-faults')
  const servedPartial: string[] = []
  const mispredicted: string[] = []
  // Each upstream numbers its own jobs: job i of an upstream has the same body from run to run.
  const counters = new Map<string, number>()
  const nextBody = (target: FaultTarget, body: (i: number) => Record<string, unknown> = i => target.body(i)) => {
    const i = counters.get(target.name) ?? 0
    counters.set(target.name, i + 1)
    return body(i)
  }
  const outcomes = new Map<string, number>()
  const judge = (what: string, v: Verdict) => {
    tally.record(what, v)
    outcomes.set(outcomeOf(v), (outcomes.get(outcomeOf(v)) ?? 0) + 1)
    if (v.servedPartial) servedPartial.push(`${what} (${v.note})`)
  }

  // 1. One fault kind at a time on each upstream's first answers; upstreams side by side.
  await Promise.all(setup.targets.map(async target => {
    for (const { kind, n: times } of MATRIX) {
      const body = nextBody(target)
      target.wire.clear()
      const count = () => kind === 'throttle' ? target.throttled() : target.wire.applied[kind]
      const before = count()
      if (kind === 'throttle') target.throttle(times)
      else target.wire.arm(kind, times)
      const v = await runJob(c, target, body)
      const applied = count() - before
      const what = `${target.name} ${kind}×${times}`
      if (applied < times) v.survived = false
      judge(what, { ...v, note: applied < times ? `the fault was applied ${applied} of ${times} times` : v.note })
      if (outcomeOf(v) !== predicted(target, kind)) mispredicted.push(`${what}: ${outcomeOf(v)}, expected ${predicted(target, kind)} (${v.job?.error?.message ?? ''})`)
    }
  }))
  // 2. An answer spoiled in the middle of a job, after its first page was stored: failed, and no partial result.
  const partials: string[] = []
  await Promise.all(setup.targets.map(async target => {
    if (target.partial === null) return
    for (const kind of ['garble', 'wrongShape'] as const) {
      target.wire.clear()
      target.wire.arm(kind, 1, { after: target.partial.after })
      const v = await runJob(c, target, nextBody(target, target.partial.body))
      const what = `${target.name} ${kind} mid-job`
      judge(what, v)
      if (outcomeOf(v) !== 'failed invalid_upstream_response') mispredicted.push(`${what}: ${outcomeOf(v)}, expected failed invalid_upstream_response`)
      if ((v.job?.progress.records ?? 0) === 0) partials.push(`${what}: no record was stored before the fault`)
    }
  }))
  t.same(partials, [], 'mid-job faults struck after the first page was stored')
  t.same(mispredicted, [], 'each single fault ends as the upstream\'s protocol says it must')

  // 3. Random faults at 10–30% 5xx plus a little of everything else, after a 429 burst, four jobs per upstream at once.
  const rates = [0.1, 0.3, 0.2, 0.15, 0.25]
  const runs: Array<Promise<void>> = []
  setup.targets.forEach((target, i) => {
    const rate = rates[i % rates.length] as number
    target.wire.clear()
    target.wire.setRatios({ unavailable: rate, reset: 0.03, hang: 0.01, stall: 0.01, truncate: 0.01, garble: 0.01, wrongShape: 0.01 })
    target.throttle(2)
    for (let j = 0; j < 4; j++) {
      const body = nextBody(target)
      runs.push(runJob(c, target, body).then(v => judge(`${target.name} random ${Math.round(rate * 100)}% 5xx job ${j + 1}`, v)))
    }
  })
  await Promise.all(runs)
  for (const target of setup.targets) target.wire.clear()

  t.same(servedPartial, [], 'a failed read job answers 409 for its results, never its partial records (docs/API.md, Results availability)')
  const applied = setup.targets.map(x => `${x.name} ${x.wire.total}`).join(', ')
  t.comment(`wire faults applied: ${applied}; jobs ${tally.tried} (${[...outcomes].map(([o, k]) => `${k} ${o}`).join(', ')}); ${Math.round((Date.now() - started) / 1000)} s`)
  await c.stop()
  const worries = c.logs.filter(l => /"level":(50|60)/.test(l))
  t.same(worries.map(l => JSON.parse(l).msg), [], 'the engine logged no error')
  tally.report(t)
}
