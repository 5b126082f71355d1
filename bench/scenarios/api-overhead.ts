/**
 * Target 4: GET /jobs/{id} requests per second against a bare Fastify route answering the same JSON from memory.
 * Line 4 reads a completed job (a terminal job, whose view the gateway may serve from its cache); line 4b, for
 * information, reads a running job, whose view comes from PostgreSQL on every request.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SANDBOX_CREDENTIALS, startDrchronoSimulator } from '../../src/upstreams/drchrono/simulator/index.js'
import { run } from '../copy.js'
import { cpuMeter, processCpu } from '../cpu.js'
import { UNMETERED_DRCHRONO, freePort, startGateway, type GatewayProcess } from '../gateway-process.js'
import { submitJob, waitForJob } from '../jobs.js'
import { load, warmUp, type LoadOptions } from '../load.js'
import { microsEach, percent, perSecond, type Line } from '../report.js'

const CONNECTIONS = 10

async function withBareServer<T> (json: string, fn: (url: string, pid: number) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'bulk-gateway-bench-bare-'))
  const file = join(dir, 'job.json')
  await writeFile(file, json)
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/bare-server.ts', file, String(port)], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000) })
  const exited = once(child, 'exit')
  const url = `http://127.0.0.1:${port}`
  try {
    const deadline = Date.now() + 30_000
    while (!(await fetch(`${url}/jobs/x`).then(r => r.ok, () => false))) {
      if (child.exitCode !== null) throw new Error(`the bare server exited: ${stderr}`)
      if (Date.now() > deadline) throw new Error(`the bare server did not answer in 30 s: ${stderr}`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    return await fn(url, child.pid as number)
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  }
}

/** What one autocannon run against the gateway measured, with the CPU it cost. */
interface GatewayRun { rps: number, p99: number, requests: number, cpu: { gateway: number, postgres: number | null, bench: number } }

async function loadGateway (gw: GatewayProcess, databaseUrl: string, path: string, seconds: number): Promise<GatewayRun> {
  const opts: LoadOptions = { url: gw.url + path, headers: { authorization: `Bearer ${gw.key}` }, connections: CONNECTIONS, seconds }
  await warmUp(opts)
  const meter = await cpuMeter(databaseUrl, gw.pid)
  const result = await load(opts)
  return { rps: result.rps, p99: result.p99, requests: result.requests, cpu: meter() }
}

/**
 * A job that reads `running` for as long as the measurement lasts: a row held under a lease no worker owns
 * (it expires in an hour), so no worker claims it and its view comes from the database on every request. It
 * belongs to the same client as `ofJob`. Removed afterwards.
 */
async function withRunningJob<T> (databaseUrl: string, ofJob: string, fn: (id: string) => Promise<T>): Promise<T> {
  const { rows: [row] } = await run(databaseUrl, `INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status,
      records, pages_done, pages_total, attempts, lease_owner, lease_expires_at, started_at)
    SELECT gen_random_uuid(), client_id, upstream, resource, params, 'bench-running-job', 'running',
      12000, 12, 100, 1, 'bench-no-worker', now() + interval '1 hour', now()
    FROM jobs WHERE id = $1 RETURNING id`, [ofJob])
  const id = (row as { id: string } | undefined)?.id
  if (id === undefined) throw new Error(`job ${ofJob} is not in the database`)
  try {
    return await fn(id)
  } finally {
    await run(databaseUrl, 'DELETE FROM jobs WHERE id = $1', [id])
  }
}

/** Line 4 (a completed job), followed by line 4b (a running job), both against the same bare route. */
export async function apiOverhead (gw: GatewayProcess, databaseUrl: string, jobId: string, seconds: number): Promise<Line[]> {
  const res = await gw.request(`/jobs/${jobId}`)
  const json = await res.text()
  if (res.status !== 200) throw new Error(`GET /jobs/${jobId} answered ${res.status}`)
  const path = `/jobs/${jobId}`
  const gateway = await loadGateway(gw, databaseUrl, path, seconds)
  const running = await withRunningJob(databaseUrl, jobId, async id => {
    const view = await gw.request(`/jobs/${id}`).then(r => r.json() as Promise<{ status: string }>)
    if (view.status !== 'running') throw new Error(`the running job reads ${view.status}`)
    return loadGateway(gw, databaseUrl, `/jobs/${id}`, seconds)
  })
  const bare = await withBareServer(json, async (url, pid) => {
    const bareLoad: LoadOptions = { url: url + path, connections: CONNECTIONS, seconds }
    await warmUp(bareLoad)
    const cpu0 = processCpu(pid)
    const result = await load(bareLoad)
    return { ...result, cpu: processCpu(pid) - cpu0 }
  })
  const ratio = gateway.rps / bare.rps
  const runningRatio = running.rps / bare.rps
  const cpuNote = (r: GatewayRun): string =>
    `CPU per request: gateway ${microsEach(r.cpu.gateway, r.requests)} + PostgreSQL ${microsEach(r.cpu.postgres, r.requests)}; bare route ${microsEach(bare.cpu, bare.requests)}`
  const bareData = { bareRps: bare.rps, bareP99: bare.p99, bareCpuSeconds: bare.cpu, bareRequests: bare.requests }
  return [{
    id: '4',
    what: `GET /jobs/{id} requests/s, ${CONNECTIONS} connections (autocannon), completed job`,
    gateway: perSecond(gateway.rps, 'req'),
    baseline: `${perSecond(bare.rps, 'req')} bare Fastify, JSON in memory`,
    ratio: percent(ratio),
    target: '≥ 30% of bare',
    pass: ratio >= 0.3,
    data: {
      connections: CONNECTIONS,
      seconds,
      bodyBytes: json.length,
      gatewayRps: gateway.rps,
      gatewayP99: gateway.p99,
      ratio,
      gatewayCpuSeconds: gateway.cpu,
      gatewayRequests: gateway.requests,
      ...bareData,
    },
    note: cpuNote(gateway),
  }, {
    id: '4b',
    what: 'GET /jobs/{id} of a running job (read from PostgreSQL on every request)',
    gateway: perSecond(running.rps, 'req'),
    baseline: `${perSecond(bare.rps, 'req')} bare Fastify, JSON in memory`,
    ratio: percent(runningRatio),
    target: '-',
    pass: null,
    data: {
      connections: CONNECTIONS,
      seconds,
      gatewayRps: running.rps,
      gatewayP99: running.p99,
      ratio: runningRatio,
      gatewayCpuSeconds: running.cpu,
      gatewayRequests: running.requests,
      ...bareData,
    },
    note: cpuNote(running),
  }]
}

/**
 * Target 4 on its own (BENCH_ONLY=api): a gateway, a small DrChrono job run to completion, then lines 4 and 4b.
 * Quicker than the bulk scenario, which measures the same lines on its million-record job.
 */
export async function apiOverheadAlone (databaseUrl: string, settings: { loadSeconds: number }, log: (s: string) => void): Promise<Line[]> {
  const resource = 'line_items'
  const sim = await startDrchronoSimulator({ seed: 7, inProgressPolls: 0, generationMs: 0, recordCount: { [resource]: 5000 } })
  try {
    const gw = await startGateway(databaseUrl, {
      UPSTREAMS: 'drchrono', DRCHRONO_BASE_URL: sim.url, DRCHRONO_ACCESS_TOKEN: SANDBOX_CREDENTIALS.accessToken, DRCHRONO_POLL_INTERVAL_MS: '10', ...UNMETERED_DRCHRONO,
    })
    try {
      log('api: a 5-page DrChrono job, then GET /jobs/{id} against a bare route')
      const job = await submitJob(gw, { upstream: 'drchrono', resource, params: { page_size: 1000 } })
      await waitForJob(gw, job.id, { pollMs: 50, timeoutMs: 120_000 })
      return await apiOverhead(gw, databaseUrl, job.id, settings.loadSeconds)
    } finally {
      await gw.stop()
    }
  } finally {
    await sim.close()
  }
}
