/**
 * Two gateway processes on one database, with DrChrono and Cliniko simulators: what the campaign's files about
 * replicas sharing upstream budgets and tokens (shared-upstreams, token-rotation) start from.
 */
import type { Test } from 'tap'
import { SANDBOX_API_KEY, SANDBOX_USER_AGENT, expectedRecords as clinikoRecords, startClinikoSimulator } from '../../src/upstreams/cliniko/simulator/index.js'
import { expectedRecords as drchronoRecords, type DrchronoSimulatorOptions } from '../../src/upstreams/drchrono/simulator/index.js'
import { testDatabase } from '../helpers/database.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { spawnGateway, type GatewayProcess } from '../helpers/process.js'
import type { Tally } from './campaign.js'
import { submitJob, type ReadJob } from './read-jobs.js'

const DRCHRONO_COUNTS = { appointments: 400 }
const CLINIKO_COUNTS = { patients: 500 }

export const drchronoJob = (i: number): ReadJob => {
  const params = { page_size: 130 + i }
  return { body: { upstream: 'drchrono', resource: 'appointments', params }, expected: drchronoRecords('appointments', params, { seed: 7, recordCount: DRCHRONO_COUNTS }).map(r => JSON.stringify(r)) }
}

export const clinikoJob = (i: number): ReadJob => {
  const params = { per_page: 40 + i }
  return { body: { upstream: 'cliniko', resource: 'patients', params }, expected: clinikoRecords('patients', params, { seed: 7, recordCount: CLINIKO_COUNTS }) }
}

/** DrChrono and Cliniko simulators, one database, two gateway processes on it. */
export async function replicas (t: Test, drchrono: DrchronoSimulatorOptions, env: Record<string, string>, refresh = false) {
  const sim = await startDrchrono(t, { recordCount: DRCHRONO_COUNTS, inProgressPolls: 0, generationMs: 200, ...drchrono })
  const cliniko = await startClinikoSimulator({ seed: 7, recordCount: CLINIKO_COUNTS, latencyMs: 20 })
  t.teardown(() => cliniko.close())
  const databaseUrl = await testDatabase(t)
  const all = {
    ...drchronoEnv(sim, { refresh }),
    DATABASE_URL: databaseUrl,
    UPSTREAMS: 'drchrono,cliniko',
    WORKER_CONCURRENCY: '4',
    LEASE_SECONDS: '3',
    CLINIKO_BASE_URL: cliniko.apiUrl,
    CLINIKO_API_KEY: SANDBOX_API_KEY,
    CLINIKO_USER_AGENT: SANDBOX_USER_AGENT,
    ...env,
  }
  const gateways = await Promise.all([spawnGateway(t, all), spawnGateway(t, all)])
  return { sim, cliniko, databaseUrl, env: all, gateways }
}

/** Submits the jobs to the gateways in turn; their ids. */
export async function submitAll (gateways: GatewayProcess[], jobs: ReadJob[]): Promise<string[]> {
  const ids: string[] = []
  for (const [i, job] of jobs.entries()) ids.push(await submitJob(gateways[i % gateways.length]!, job))
  return ids
}

/** Asserts that every fault tallied since `before` was survived (the tally subtest also does, for the whole file). */
export function survivedSince (t: Test, tally: Tally, before: { tried: number, survived: number }): void {
  const failed = (tally.tried - before.tried) - (tally.survived - before.survived)
  t.equal(failed, 0, `every fault of this scenario survived${failed > 0 ? `: ${tally.notes.slice(-failed).join('; ')}` : ''}`)
}
