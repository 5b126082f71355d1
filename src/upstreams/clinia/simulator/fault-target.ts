/**
 * Clinia under the fault campaign (simulator-kit/fault-target.ts): write jobs of 10 UPSERTs in chunks of 4, whose
 * records are the receipts of the tasks Clinia ran.
 */
import { serveUnderFire, type FaultTargetFactory } from '../../simulator-kit/fault-target.js'
import { CliniaSimulatorState, SANDBOX_CREDENTIALS, cliniaSimulator, goJson } from './index.js'

/** Operations per bulk request (CLINIA_MAX_OPERATIONS): a job of 10 operations is three chunks. */
const CHUNK = 4

const body = (i: number) => ({
  upstream: 'clinia',
  resource: 'resources',
  operations: Array.from({ length: 10 }, (_, k) => ({ action: 'UPSERT', upsert: { id: `job${i}-p${k}`, type: 'provider', data: { name: `Provider ${i}.${k}` } } })),
})

export const cliniaFaultTarget: FaultTargetFactory = async seed => {
  const state = new CliniaSimulatorState({ pendingPolls: 1 })
  const { wire, url, close } = await serveUnderFire(cliniaSimulator, state, seed)
  return {
    name: 'clinia',
    wire,
    env: {
      CLINIA_BASE_URL: url,
      CLINIA_API_KEY: SANDBOX_CREDENTIALS.apiKey,
      CLINIA_SOURCE_KEY: SANDBOX_CREDENTIALS.sourceKey,
      CLINIA_MAX_OPERATIONS: String(CHUNK),
      CLINIA_POLL_INITIAL_MS: '10',
      CLINIA_POLL_MAX_MS: '50',
    },
    throttle: n => state.failNext(n, 429, 'any', 0),
    throttled: () => state.stats.throttled,
    body,
    // Receipts of the tasks the job recorded, as Clinia wrote them, each with its index spliced in.
    expected: (job, jobBody) => {
      const taskIds = (job.upstreamInfo?.taskIds ?? []) as string[]
      const count = (jobBody.operations as unknown[]).length
      const out: string[] = []
      for (let i = 0; i < count; i++) {
        const receipt = state.tasks.get(taskIds[Math.floor(i / CHUNK)] ?? '')?.receipts?.[i % CHUNK]
        if (receipt === undefined) break
        out.push(`{"index":${i},${goJson(receipt).slice(1)}`)
      }
      return out
    },
    keepsFailedRecords: true,
    // Chunk 1: submit, one PENDING poll, the poll with receipts; then chunk 2's submit.
    partial: { after: 3, body },
    // The bulk submit is not idempotent: an answer lost after it was sent fails the job rather than send it twice.
    outcomes: { hang: 'failed upstream_timeout', stall: 'failed upstream_timeout', reset: 'failed upstream_unavailable' },
    close,
  }
}
