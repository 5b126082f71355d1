/** The worker thread of large `POST /jobs` bodies (job-body.ts): the body's bytes in, plain data out. */
import { workerData } from 'node:worker_threads'
import { move, transferableSymbol, valueSymbol } from 'piscina'
import { loadRegistry } from '../upstreams/registry.js'
import { prepareJobBody, type PrepareResult } from './job-body-prepare.js'

/** The app's own registry, loaded from the module the app named (job-body.ts). */
const registry = await loadRegistry((workerData as { registryModule: string }).registryModule)

export default function prepare (parts: Uint8Array[]): unknown {
  const result = prepareJobBody(parts, registry)
  const payload = result.ok ? result.job.payloadJsonb : null
  if (payload === null) return result
  // The payload's bytes move to the event loop's thread rather than being copied (36 MB for 100 000 operations).
  return move({ get [transferableSymbol] () { return [payload.buffer] }, get [valueSymbol] (): PrepareResult { return result } })
}
