/**
 * The Cliniko simulator as the upstream's definition, tests and benchmarks use it: the plugin, a way to start it
 * alone, its state and settings, and the records a job must end with.
 */
export { clinikoSimulator, startClinikoSimulator, type ClinikoSimulatorPluginOptions, type RunningClinikoSimulator } from './plugin.js'
export {
  ClinikoSimulatorState, SANDBOX_API_KEY, SANDBOX_USER_AGENT, type ClinikoSimulatorOptions, type ClinikoThrottleHeaders, type UnauthorizedBody,
} from './state.js'
export { expectedRecords, DEFAULT_RECORD_COUNTS } from './lists.js'
