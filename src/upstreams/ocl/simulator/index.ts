/**
 * The OCL simulator as the upstream's definition, tests and benchmarks use it: the plugin, a way to start it alone,
 * its state and settings, and the records a job must end with.
 */
export { oclSimulator, startOclSimulator, type OclSimulatorPluginOptions, type RunningOclSimulator } from './plugin.js'
export { OclSimulatorState, SANDBOX_OCL_TOKEN, type OclSimulatorOptions, type OclThrottleHeaders, type ReadyMode } from './state.js'
export { DEFAULT_SOURCES, expectedChanges, expectedExport, expectedLatestVersion, lastUpdatedOf, type SimSource } from './terminology.js'
