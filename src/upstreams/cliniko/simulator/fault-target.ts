/** Cliniko under the fault campaign (simulator-kit/fault-target.ts): link-paginated seeded patients. */
import { serveUnderFire, type FaultTargetFactory } from '../../simulator-kit/fault-target.js'
import { SANDBOX_API_KEY, SANDBOX_USER_AGENT, clinikoSimulator, ClinikoSimulatorState, expectedRecords } from './index.js'

const body = (i: number) => ({ upstream: 'cliniko', resource: 'patients', params: { per_page: 25 + i } })

export const clinikoFaultTarget: FaultTargetFactory = async seed => {
  const recordCount = { patients: 150 }
  const state = new ClinikoSimulatorState({ seed: 7, rateLimit: 0, recordCount })
  const { wire, url, close } = await serveUnderFire(clinikoSimulator, state, seed)
  return {
    name: 'cliniko',
    wire,
    env: {
      CLINIKO_BASE_URL: `${url}/v1`,
      CLINIKO_API_KEY: SANDBOX_API_KEY,
      CLINIKO_USER_AGENT: SANDBOX_USER_AGENT,
      CLINIKO_REQUESTS_PER_MINUTE: '10000',
    },
    throttle: n => state.throttleNext(n, 1),
    throttled: () => state.stats.throttled,
    body,
    expected: (_job, job) => expectedRecords('patients', job.params as { per_page: number }, { seed: 7, recordCount }),
    keepsFailedRecords: false,
    partial: { after: 1, body },
    close,
  }
}
