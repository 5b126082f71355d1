/**
 * The Clinia simulator as the upstream's definition, tests and benchmarks use it: the plugin, a way to start it
 * alone, its state, the source's schema, and the JSON encoding its answers use.
 */
export { cliniaSimulator, goJson, startCliniaSimulator, type CliniaSimulatorPluginOptions, type RunningCliniaSimulator } from './plugin.js'
export {
  CliniaSimulatorState, REJECTED_STATUSES, SANDBOX_CREDENTIALS, operationsDigest, type CliniaSimulatorOptions, type RejectedStatus, type SimTask,
} from './state.js'
export { SIM_PROFILES, SIM_RELATIONSHIPS } from './profiles.js'
