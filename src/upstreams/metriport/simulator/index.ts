/**
 * The Metriport simulator as the upstream's definition, tests and benchmarks use it: the plugin, a way to start it
 * alone, its state and deliveries, and the patients and documents it knows.
 */
export { metriportSimulator, startMetriportSimulator, type MetriportSimulatorPluginOptions, type RunningMetriportSimulator } from './plugin.js'
export { MetriportSimulatorState, type MetriportSimulatorOptions, type DeliveryRecord, type SimulatedRun } from './state.js'
export { SANDBOX_PATIENT_IDS, sandboxPatientId, patientDocuments } from './documents.js'
