/** ledger under the fault campaign (src/upstreams/simulator-kit/fault-target.ts). */
import { serveUnderFire, type FaultTargetFactory } from '../../../../../src/upstreams/simulator-kit/fault-target.js'
import { ledgerSimulator, LedgerSimulatorState } from './index.js'

const body = (i: number) => ({ upstream: 'ledger', resource: 'entries', params: { limit: 20 + i, since: `2024-0${1 + (i % 6)}-01` } })

export const ledgerFaultTarget: FaultTargetFactory = async seed => {
  const state = new LedgerSimulatorState({ seed: 7, count: 160, key: 'fault-campaign-ledger-key' })
  const { wire, url, close } = await serveUnderFire(ledgerSimulator, state, seed)
  return {
    name: 'ledger',
    wire,
    env: { LEDGER_BASE_URL: url, LEDGER_KEY: state.options.key },
    throttle: n => state.throttleNext(n),
    throttled: () => state.stats.throttled,
    body,
    expected: (_job, job) => state.expected((job.params as { since?: string }).since),
    keepsFailedRecords: false,
    partial: { after: 1, body },
    close,
  }
}
