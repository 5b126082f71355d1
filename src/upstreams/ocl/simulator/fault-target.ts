/**
 * OCL under the fault campaign (simulator-kit/fault-target.ts): exports (the version lookup, the export state
 * machine, the signed download) and changes (the paged lists) of one small seeded source, by turns.
 */
import { serveUnderFire, type FaultTargetFactory } from '../../simulator-kit/fault-target.js'
import { SANDBOX_OCL_TOKEN, expectedChanges, expectedExport, oclSimulator, OclSimulatorState, type SimSource } from './index.js'

const SOURCE: SimSource = {
  ownerType: 'orgs',
  owner: 'FAULTS',
  source: 'Small',
  public: true,
  concepts: 140,
  mappings: 90,
  versions: [
    { id: 'v2', released: true, createdOn: '2024-04-01T12:00:00Z' },
    { id: 'v1', released: true, createdOn: '2024-01-01T12:00:00Z' },
  ],
}
const AT = { ownerType: 'orgs', owner: 'FAULTS', source: 'Small' }

export const oclFaultTarget: FaultTargetFactory = async seed => {
  const options = { seed: 7, sources: [SOURCE] }
  const state = new OclSimulatorState({ ...options, exportPolls: 1 })
  const { wire, url, close } = await serveUnderFire(oclSimulator, state, seed)
  return {
    name: 'ocl',
    wire,
    env: { OCL_BASE_URL: url, OCL_TOKEN: SANDBOX_OCL_TOKEN, OCL_EXPORT_POLL_SECONDS: '0.02' },
    throttle: n => state.throttleNext(n),
    throttled: () => state.stats.throttled,
    // The first answer of both kinds is JSON, for the faults that spoil one.
    body: i => i % 2 === 0
      ? { upstream: 'ocl', resource: 'export', params: { ...AT, version: 'latest', includeRetired: i % 4 === 0 } }
      : { upstream: 'ocl', resource: 'changes', params: { ...AT, updatedSince: `2023-0${1 + (i % 9)}-01`, includeRetired: i % 3 === 0 } },
    expected: (job, body) => {
      const p = body.params as { version?: string, updatedSince?: string, includeRetired: boolean }
      if (body.resource === 'changes') return expectedChanges(options, { ...AT, sinceMs: Date.parse(p.updatedSince as string), includeRetired: p.includeRetired })
      return expectedExport(options, { ...AT, version: String(job.upstreamInfo?.version ?? (p.version === 'latest' ? 'v2' : p.version)) })
    },
    keepsFailedRecords: false,
    // A changes job: concepts page 1 and the mappings total, then the save, then mappings page 1.
    partial: { after: 2, body: i => ({ upstream: 'ocl', resource: 'changes', params: { ...AT, updatedSince: '2000-01-01', includeRetired: i % 2 === 0 } }) },
    close,
  }
}
