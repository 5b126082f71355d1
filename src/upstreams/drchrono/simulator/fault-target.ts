/** DrChrono under the fault campaign (simulator-kit/fault-target.ts): paged bulk lists of seeded appointments. */
import { serveUnderFire, type FaultTargetFactory } from '../../simulator-kit/fault-target.js'
import { SANDBOX_CREDENTIALS, drchronoSimulator, DrchronoSimulatorState, expectedRecords } from './index.js'

const body = (i: number) => ({ upstream: 'drchrono', resource: 'appointments', params: { page_size: 30 + i } })

export const drchronoFaultTarget: FaultTargetFactory = async seed => {
  const recordCount = { appointments: 180 }
  const state = new DrchronoSimulatorState({ seed: 7, inProgressPolls: 1, recordCount })
  const { wire, url, close } = await serveUnderFire(drchronoSimulator, state, seed)
  return {
    name: 'drchrono',
    wire,
    env: {
      DRCHRONO_BASE_URL: url,
      DRCHRONO_ACCESS_TOKEN: SANDBOX_CREDENTIALS.accessToken,
      DRCHRONO_POLL_INTERVAL_MS: '20',
      DRCHRONO_PAGE_CONCURRENCY: '3',
    },
    throttle: n => state.throttleNext(n, 1),
    throttled: () => state.stats.throttled,
    body,
    expected: (_job, job) => expectedRecords('appointments', job.params as Record<string, number>, { seed: 7, recordCount }).map(r => JSON.stringify(r)),
    keepsFailedRecords: false,
    // Pages 1..3 go out together (DRCHRONO_PAGE_CONCURRENCY=3): 3 POSTs, 3 "In progress" polls, 3 Complete polls.
    // The fault strikes the 10th answer, after at least one page has been handed to be saved.
    partial: { after: 9, body },
    close,
  }
}
