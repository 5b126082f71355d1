/** Target 4: GET /jobs/{id} requests per second against a bare Fastify route answering the same JSON from memory. */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpuMeter, processCpu } from '../cpu.js'
import { freePort, type GatewayProcess } from '../gateway-process.js'
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

export async function apiOverhead (gw: GatewayProcess, databaseUrl: string, jobId: string, seconds: number): Promise<Line> {
  const res = await gw.request(`/jobs/${jobId}`)
  const json = await res.text()
  if (res.status !== 200) throw new Error(`GET /jobs/${jobId} answered ${res.status}`)
  const path = `/jobs/${jobId}`
  const gatewayLoad: LoadOptions = { url: gw.url + path, headers: { authorization: `Bearer ${gw.key}` }, connections: CONNECTIONS, seconds }
  await warmUp(gatewayLoad)
  const meter = await cpuMeter(databaseUrl, gw.pid)
  const gateway = await load(gatewayLoad)
  const cpu = meter()
  const bare = await withBareServer(json, async (url, pid) => {
    const bareLoad: LoadOptions = { url: url + path, connections: CONNECTIONS, seconds }
    await warmUp(bareLoad)
    const cpu0 = processCpu(pid)
    const result = await load(bareLoad)
    return { ...result, cpu: processCpu(pid) - cpu0 }
  })
  const ratio = gateway.rps / bare.rps
  return {
    id: '4', what: `GET /jobs/{id} requests/s, ${CONNECTIONS} connections (autocannon)`,
    gateway: perSecond(gateway.rps, 'req'), baseline: `${perSecond(bare.rps, 'req')} bare Fastify, JSON in memory`,
    ratio: percent(ratio), target: '≥ 30% of bare', pass: ratio >= 0.3,
    data: { connections: CONNECTIONS, seconds, bodyBytes: json.length, gatewayRps: gateway.rps, gatewayP99: gateway.p99, bareRps: bare.rps, bareP99: bare.p99, ratio, gatewayCpuSeconds: cpu, gatewayRequests: gateway.requests, bareCpuSeconds: bare.cpu, bareRequests: bare.requests },
    note: `CPU per request: gateway ${microsEach(cpu.gateway, gateway.requests)} + PostgreSQL ${microsEach(cpu.postgres, gateway.requests)}; bare route ${microsEach(bare.cpu, bare.requests)}`,
  }
}
