/** HTTP load with autocannon. Callers warm the server up first (a run whose figures are thrown away). */
import autocannon from 'autocannon'

export interface LoadOptions {
  url: string
  headers?: Record<string, string>
  connections: number
  seconds: number
  /** Each request's path (and query); the URL's own when absent. */
  path?: () => string
}

export interface LoadResult {
  /** Mean requests per second over the run. */
  rps: number
  p50: number
  p99: number
  requests: number
  connections: number
  seconds: number
}

/** One autocannon run; any non-2xx answer, error or timeout fails it, since its figures would mislead. */
export async function load (opts: LoadOptions): Promise<LoadResult> {
  const r = await autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.seconds,
    timeout: 30,
    headers: opts.headers ?? {},
    ...(opts.path === undefined ? {} : { requests: [{ setupRequest: request => ({ ...request, path: opts.path!() }) }] }),
  })
  if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0) {
    throw new Error(`${opts.url}: ${r.non2xx} non-2xx answers, ${r.errors} errors, ${r.timeouts} timeouts in ${r.requests.total} requests`)
  }
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, requests: r.requests.total, connections: opts.connections, seconds: opts.seconds }
}

/** A short run to warm the server (JIT, pools, caches) before the measured one. */
export async function warmUp (opts: LoadOptions, seconds = 2): Promise<void> {
  await load({ ...opts, seconds })
}
