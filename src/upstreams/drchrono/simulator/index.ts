/**
 * The DrChrono simulator as the upstream's definition, tests and benchmarks use it: the plugin, a way to start it
 * alone, its state and vocabulary, and the records a job must end with.
 */
export { drchronoSimulator, startDrchronoSimulator, type DrchronoSimulatorPluginOptions, type RunningDrchronoSimulator } from './plugin.js'
export { DrchronoSimulatorState, IN_PROGRESS_BODIES, PAST_END_MODES, SANDBOX_CREDENTIALS, type DrchronoSimulatorOptions, type InProgressBody, type PastEndMode } from './state.js'
export { expectedRecords, DEFAULT_RECORD_COUNTS } from './lists.js'
