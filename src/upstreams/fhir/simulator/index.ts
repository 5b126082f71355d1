/**
 * The FHIR Bulk Data simulator as the upstream's definition, tests and the fault campaign use it: the plugin, a way
 * to start it alone, its state and settings, and the records a job must end with.
 */
export { fhirSimulator, startFhirSimulator, type FhirSimulatorPluginOptions, type RunningFhirSimulator } from './plugin.js'
export { FhirSimulatorState, type FhirSimulatorOptions, type FhirSimulatorStats, type RetryAfterMode, type SimExport } from './state.js'
export { expectedRecords, planExport, type ExportRequest, type ExportShape, type PlannedFile } from './exports.js'
export { resourcesOf, SIM_GROUPS, SIM_TYPES, PATIENT_TYPES, type SimDataOptions, type SimResource } from './data.js'
