/**
 * Read jobs for the process faults: DrChrono, Cliniko and OCL simulators on loopback, slow enough that a job is
 * still running when its gateway dies, the gateway environment that points at them, job bodies that differ from
 * one another, and the exact records each job must end with.
 */
import type { Test } from 'tap'
import type { GatewayProcess } from '../helpers/process.js'
import { recordsLost, storedRecords, type JobView, type Tally } from './campaign.js'
import { startClinikoSimulator, expectedRecords as clinikoRecords, SANDBOX_API_KEY, SANDBOX_USER_AGENT } from '../../src/upstreams/cliniko/simulator/index.js'
import { startDrchronoSimulator, expectedRecords as drchronoRecords, SANDBOX_CREDENTIALS } from '../../src/upstreams/drchrono/simulator/index.js'
import { expectedExport, startOclSimulator, SANDBOX_OCL_TOKEN, type SimSource } from '../../src/upstreams/ocl/simulator/index.js'

const DRCHRONO_COUNTS = { appointments: 900 }
const CLINIKO_COUNTS = { patients: 600 }
const OCL_SOURCE: SimSource = {
  ownerType: 'orgs',
  owner: 'FAULTS',
  source: 'Medium',
  public: true,
  concepts: 1600,
  mappings: 900,
  versions: [
    { id: 'v3', released: true, createdOn: '2024-06-01T12:00:00Z' },
    { id: 'v2', released: true, createdOn: '2024-03-01T12:00:00Z' },
    { id: 'v1', released: true, createdOn: '2024-01-01T12:00:00Z' },
  ],
}
const OCL_OPTIONS = { seed: 7, sources: [OCL_SOURCE] }

export interface ReadJob { body: { upstream: string, resource: string, params: Record<string, unknown> }, expected: string[] }

/** The simulators (closed at the test's end) and the gateway variables that point at them. */
export async function startReadUpstreams (t: Test): Promise<{ env: Record<string, string>, job (i: number): ReadJob }> {
  // Each page takes a moment to generate (DrChrono) or to answer (Cliniko): jobs last seconds, not milliseconds.
  const drchrono = await startDrchronoSimulator({ seed: 7, inProgressPolls: 1, generationMs: 250, recordCount: DRCHRONO_COUNTS })
  const cliniko = await startClinikoSimulator({ seed: 7, rateLimit: 0, latencyMs: 150, recordCount: CLINIKO_COUNTS })
  const ocl = await startOclSimulator({ ...OCL_OPTIONS, exportPolls: 3 })
  t.teardown(async () => { await drchrono.close(); await cliniko.close(); await ocl.close() })
  const env = {
    DRCHRONO_BASE_URL: drchrono.url,
    DRCHRONO_ACCESS_TOKEN: SANDBOX_CREDENTIALS.accessToken,
    DRCHRONO_POLL_INTERVAL_MS: '50',
    DRCHRONO_PAGE_CONCURRENCY: '2',
    CLINIKO_BASE_URL: cliniko.apiUrl,
    CLINIKO_API_KEY: SANDBOX_API_KEY,
    CLINIKO_USER_AGENT: SANDBOX_USER_AGENT,
    CLINIKO_REQUESTS_PER_MINUTE: '10000',
    OCL_BASE_URL: ocl.url,
    OCL_TOKEN: SANDBOX_OCL_TOKEN,
    OCL_EXPORT_POLL_SECONDS: '0.2',
  }
  const job = (i: number): ReadJob => {
    if (i % 5 === 4) {
      const version = ['v3', 'v2', 'v1'][Math.floor(i / 5) % 3] as string
      const params = { ownerType: 'orgs', owner: 'FAULTS', source: 'Medium', version, includeRetired: Math.floor(i / 15) % 2 === 1 }
      return { body: { upstream: 'ocl', resource: 'export', params }, expected: expectedExport(OCL_OPTIONS, { ownerType: 'orgs', owner: 'FAULTS', source: 'Medium', version }) }
    }
    if (i % 2 === 0) {
      const params = { page_size: 60 + i }
      return { body: { upstream: 'drchrono', resource: 'appointments', params }, expected: drchronoRecords('appointments', params, { seed: 7, recordCount: DRCHRONO_COUNTS }).map(r => JSON.stringify(r)) }
    }
    const params = { per_page: 40 + i }
    return { body: { upstream: 'cliniko', resource: 'patients', params }, expected: clinikoRecords('patients', params, { seed: 7, recordCount: CLINIKO_COUNTS }) }
  }
  return { env, job }
}

/** Submits a job to a gateway process; its id. */
export async function submitJob (gw: GatewayProcess, job: ReadJob): Promise<string> {
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify(job.body) })
  if (res.status !== 202) throw new Error(`POST /jobs answered ${res.status}: ${await res.text()}`)
  return (await res.json() as { id: string }).id
}

/** Reads jobs through whichever gateway process `gw()` names now (it changes across restarts). */
export const jobReader = (gw: () => GatewayProcess) => async (id: string): Promise<JobView> => await (await gw().request(`/jobs/${id}`)).json() as JobView

/** Tallies one job: survived when it completed with exactly the expected records; a hung one is null. */
export async function judgeJob (tally: Tally, databaseUrl: string, what: string, id: string, job: JobView | null, expected: readonly string[]): Promise<void> {
  if (job === null) { tally.record(what, { survived: false, note: `job ${id} hung` }); return }
  const stored = await storedRecords(databaseUrl, id)
  const lost = recordsLost(stored, expected)
  const survived = job.status === 'completed' && lost === 0
  tally.record(what, { survived, lost, note: `${job.status} ${job.error?.code ?? ''} ${job.error?.message ?? ''}, ${stored.length} stored of ${expected.length} (${lost} differing)` })
}
