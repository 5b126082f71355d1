/**
 * The FHIR simulator as the fault campaign fires at it (simulator-kit/fault-target.ts): served alone with seeded
 * wire faults, one "in progress" poll per export, files of 20 resources, and waits of a few ms, so that a job takes
 * a handful of requests and the campaign's faults land in all of its steps.
 */
import { serveUnderFire, type FaultTarget, type FaultTargetFactory } from '../../simulator-kit/fault-target.js'
import { expectedRecords, type ExportRequest } from './exports.js'
import { fhirSimulator } from './plugin.js'
import { FhirSimulatorState, type FhirSimulatorOptions } from './state.js'

const OPTIONS: FhirSimulatorOptions = { seed: 7, pollsBeforeReady: 1, pageSize: 20, throttleBlockMs: 30 }
const LEVELS = ['system', 'patient', 'group'] as const

/** The i-th day from 2017-01-01, as a FHIR instant: makes each body differ. */
const since = (i: number): string => new Date(Date.UTC(2017, 0, 1 + i)).toISOString().replace('.000Z', 'Z')

function body (i: number): Record<string, unknown> {
  const resource = LEVELS[i % 3] as typeof LEVELS[number]
  const params: Record<string, unknown> = { _since: since(i) }
  if (resource === 'system') params._type = 'Observation,Organization,Patient'
  if (resource === 'group') params.groupId = i % 2 === 0 ? 'BlueCrossBlueShield' : 'FallonHealth'
  return { upstream: 'fhir', resource, params }
}

export const fhirFaultTarget: FaultTargetFactory = async seed => {
  const state = new FhirSimulatorState(OPTIONS)
  const { wire, url, close } = await serveUnderFire(fhirSimulator, state, seed)
  const target: FaultTarget = {
    name: 'fhir',
    wire,
    env: {
      FHIR_BASE_URL: url,
      FHIR_MIN_RETRY_AFTER_SECONDS: '0.01',
      FHIR_MAX_RETRY_AFTER_SECONDS: '0.05',
    },
    throttle: n => state.throttleNext(n),
    throttled: () => state.stats.throttled,
    body,
    expected: (_job, b) => {
      const params = b.params as Omit<ExportRequest, 'level'>
      return expectedRecords(OPTIONS, { level: b.resource as ExportRequest['level'], ...params })
    },
    keepsFailedRecords: false,
    // No JSON answer comes after the first page is stored: the files are streamed NDJSON (gzip), which the body
    // faults do not spoil, and the DELETE after the last file is best effort. Faults in the files' middle are the
    // campaign's resets and hangs, and the adapter tests' broken downloads (test/upstreams/fhir/quirks.test.ts).
    partial: null,
    // The kick-off starts an export: it is not retried once sent (a second export would be left running for
    // nobody), so an answer lost after sending fails the job.
    outcomes: { hang: 'failed upstream_timeout', reset: 'failed upstream_unavailable' },
    close,
  }
  return target
}
