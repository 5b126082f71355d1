/**
 * The DrChrono simulator as the upstream's definition, tests and benchmarks use it: the plugin, a way to start it
 * alone, its state and vocabulary, and the records a job must end with.
 */
export { drchronoSimulator, startDrchronoSimulator, type DrchronoSimulatorPluginOptions, type RunningDrchronoSimulator } from './plugin.js'
export { DrchronoSimulatorState } from './state.js'
export { SANDBOX_CREDENTIALS, type DrchronoSimulatorOptions } from './options.js'
export { IN_PROGRESS_BODIES, PAST_END_MODES, type InProgressBody, type PastEndMode } from './stats.js'
export { expectedRecords, DEFAULT_RECORD_COUNTS } from './lists.js'
