/**
 * The gateway's Prometheus metrics, on a registry of their own per app: tests build several apps in one process,
 * and prom-client's global registry would refuse the second app's metric names.
 *
 * Label values are bounded by construction: upstream names come from the adapters' registry, statuses and
 * error codes from fixed sets, routes are path templates capped per upstream. Never job ids, client ids,
 * query strings or anything else a client can vary at will.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { BudgetEvent } from '../db/budget-store.js'
import type { JobCount } from '../db/sql/job-counts.js'
import { JobStatus } from '../generated/prisma/enums.js'
import type { UpstreamEvent } from '../contract/upstream-events.js'
import type { Observe } from './observe.js'

/** What the metrics read at scrape time rather than count as it happens. */
export interface MetricsSources {
  /** Jobs by upstream and status, from the database: every replica's jobs, whoever changed them last. */
  countJobs (): Promise<JobCount[]>
  /** A scrape-time read failed: the scrape still answers, without that family, rather than failing whole. */
  onCollectError (err: unknown): void
}

/** The metrics of one app. */
export interface Metrics {
  readonly registry: Registry
  /** What the engine and the routes report. */
  readonly observe: Observe
  /** The upstream client's `onEvent`: one call per attempt and per retry. */
  upstreamEvent (e: UpstreamEvent): void
  /** The shared request budgets' `observe`: requests left after each one this process sends, and waits. */
  budgetEvent (e: BudgetEvent): void
  /** Where the worker's lease count is read at scrape time (the engine plugin sets it). */
  leasesFrom (read: () => number): void
  /** Drops every metric; the app is closing. */
  close (): void
}

/** Beyond this many distinct routes for one upstream, new ones are counted as `other`. */
const MAX_ROUTES_PER_UPSTREAM = 50
const API_VERSION = /^v\d+$/i

/**
 * A segment that names one thing rather than a kind of thing: a number, uuid, date, version or token has a digit
 * in it or is long. API versions such as `v1` stay, since they are part of the route.
 */
function idLike (segment: string): boolean {
  return segment.length >= 32 || (/\d/.test(segment) && !API_VERSION.test(segment))
}

/** The route label of an upstream URL (origin + path): its path with id-like segments replaced by `:id`. */
export function routeOf (url: string): string {
  let path = url
  try {
    path = new URL(url).pathname
  } catch {
    // Already a path.
  }
  return path.split('/').map(s => s !== '' && idLike(s) ? ':id' : s).join('/')
}

const durationBuckets = {
  job: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21_600],
  upstream: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  sweep: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
}

export function createMetrics (sources: MetricsSources): Metrics {
  const registry = new Registry()
  const registers = [registry]
  // Process and runtime metrics (CPU, memory, event loop lag, GC) beside ours, in one scrape.
  collectDefaultMetrics({ register: registry })

  // eslint-disable-next-line no-new -- a collected gauge: the registry holds it, and its collect() reads the database
  new Gauge({
    name: 'bulk_gateway_jobs',
    help: 'Jobs by upstream and status, counted in the database at scrape time (all replicas).',
    labelNames: ['upstream', 'status'] as const,
    registers,
    async collect () {
      this.reset()
      try {
        const rows = await sources.countJobs()
        // Every status of a known upstream is reported, 0 included, so a series drops to 0 instead of vanishing.
        for (const upstream of new Set(rows.map(r => r.upstream))) {
          for (const status of Object.values(JobStatus)) this.set({ upstream, status }, 0)
        }
        for (const r of rows) this.set({ upstream: r.upstream, status: r.status }, r.count)
      } catch (err) {
        sources.onCollectError(err)
      }
    },
  })
  const jobsFinished = new Counter({
    name: 'bulk_gateway_jobs_finished_total',
    help: 'Jobs that reached completed, failed (with its error code) or cancelled, as this process saw them.',
    labelNames: ['upstream', 'outcome', 'code'] as const,
    registers,
  })
  const jobDuration = new Histogram({
    name: 'bulk_gateway_job_duration_seconds',
    help: 'From a job\'s first start to its end (resumes and webhook waits included), by upstream and outcome.',
    labelNames: ['upstream', 'outcome'] as const,
    buckets: durationBuckets.job,
    registers,
  })
  const requests = new Counter({
    name: 'bulk_gateway_upstream_requests_total',
    help: 'Upstream request attempts by upstream, method, route and HTTP status (network_error when none came).',
    labelNames: ['upstream', 'method', 'route', 'status'] as const,
    registers,
  })
  const latency = new Histogram({
    name: 'bulk_gateway_upstream_request_duration_seconds',
    help: 'Time from sending an upstream request attempt to its response headers.',
    labelNames: ['upstream'] as const,
    buckets: durationBuckets.upstream,
    registers,
  })
  const retries = new Counter({
    name: 'bulk_gateway_upstream_retries_total',
    help: 'Upstream requests sent again, by upstream and reason (the HTTP status or network error code).',
    labelNames: ['upstream', 'reason'] as const,
    registers,
  })
  const throttled = new Counter({
    name: 'bulk_gateway_upstream_throttled_total',
    help: 'Upstream answers 429 Too Many Requests.',
    labelNames: ['upstream'] as const,
    registers,
  })
  const recordsStored = new Counter({
    name: 'bulk_gateway_records_stored_total',
    help: 'Result records stored, by upstream (a page stored again after a restart counts once).',
    labelNames: ['upstream'] as const,
    registers,
  })
  const resultsExpired = new Counter({
    name: 'bulk_gateway_results_expired_total',
    help: 'Completed jobs whose results reached their TTL and were marked expired by the sweeper.',
    registers,
  })
  const rowsDeleted = new Counter({
    name: 'bulk_gateway_result_rows_deleted_total',
    help: 'Result records deleted by the sweeper (expired, cancelled and dropped jobs).',
    registers,
  })
  const sweepDuration = new Histogram({
    name: 'bulk_gateway_sweep_duration_seconds',
    help: 'One pass of this process\'s expiry sweeper (erase, delete results, old jobs, idempotency keys, webhook deliveries).',
    buckets: durationBuckets.sweep,
    registers,
  })
  const webhookDeliveries = new Counter({
    name: 'bulk_gateway_webhook_deliveries_total',
    help: 'Webhook deliveries by upstream and outcome: applied, duplicate, stored (no job waiting yet), rejected, ping (no job concerned).',
    labelNames: ['upstream', 'outcome'] as const,
    registers,
  })
  const callbackDeliveries = new Counter({
    name: 'bulk_gateway_callback_deliveries_total',
    help: 'Completion callback attempts by outcome: delivered (2xx), retrying (failed, another attempt scheduled), failed (a 410, or the last attempt failed).',
    labelNames: ['outcome'] as const,
    registers,
  })
  const budgetRemaining = new Gauge({
    name: 'bulk_gateway_upstream_budget_remaining',
    help: 'Requests a shared upstream budget allowed in each of its windows after the last request this process sent (all replicas counted).',
    labelNames: ['upstream', 'window'] as const,
    registers,
  })
  const budgetWait = new Counter({
    name: 'bulk_gateway_upstream_budget_wait_seconds_total',
    help: 'Time this process\'s upstream requests spent waiting for a shared request budget (or a 429\'s pause).',
    labelNames: ['upstream'] as const,
    registers,
  })
  let readLeases = (): number => 0
  // eslint-disable-next-line no-new -- a collected gauge: the registry holds it
  new Gauge({
    name: 'bulk_gateway_worker_leases_held',
    help: 'Jobs this process\'s worker holds a lease on (is running) right now.',
    registers,
    collect () { this.set(readLeases()) },
  })

  const routes = new Map<string, Set<string>>()
  const boundedRoute = (upstream: string, route: string): string => {
    let seen = routes.get(upstream)
    if (seen === undefined) routes.set(upstream, seen = new Set())
    if (seen.has(route)) return route
    // Paths can hold client-chosen names (an OCL owner or source): cap them rather than grow without bound.
    if (seen.size >= MAX_ROUTES_PER_UPSTREAM) return 'other'
    seen.add(route)
    return route
  }

  return {
    registry,
    observe: {
      jobFinished ({ upstream, outcome, code, durationSeconds }) {
        jobsFinished.inc(code === undefined ? { upstream, outcome } : { upstream, outcome, code })
        if (durationSeconds !== null) jobDuration.observe({ upstream, outcome }, durationSeconds)
      },
      recordsStored (upstream, count) { if (count > 0) recordsStored.inc({ upstream }, count) },
      jobsExpired (count) { if (count > 0) resultsExpired.inc(count) },
      resultRowsDeleted (count) { if (count > 0) rowsDeleted.inc(count) },
      sweepFinished (seconds) { sweepDuration.observe(seconds) },
      webhookDelivery (upstream, outcome) { webhookDeliveries.inc({ upstream, outcome }) },
      callbackDelivery (outcome) { callbackDeliveries.inc({ outcome }) },
    },
    upstreamEvent (e) {
      if (e.type === 'retry') {
        retries.inc({ upstream: e.upstream, reason: e.reason })
        return
      }
      const route = boundedRoute(e.upstream, routeOf(e.url))
      const status = e.type === 'response' ? String(e.status) : 'network_error'
      requests.inc({ upstream: e.upstream, method: e.method, route, status })
      if (e.type === 'response') {
        latency.observe({ upstream: e.upstream }, e.durationMs / 1000)
        if (e.status === 429) throttled.inc({ upstream: e.upstream })
      }
    },
    budgetEvent (e) {
      if (e.type === 'granted') budgetRemaining.set({ upstream: e.upstream, window: e.window }, e.remaining)
      else budgetWait.inc({ upstream: e.upstream }, e.seconds)
    },
    leasesFrom (read) { readLeases = read },
    close () {
      // prom-client cannot stop the default collectors' event-loop monitor; clearing drops every metric.
      registry.clear()
    },
  }
}
