/** The one list of upstreams. Adding an upstream is one line here and a folder beside this file. */
import { clinia } from './clinia/index.js'
import { cliniko } from './cliniko/index.js'
import { drchrono } from './drchrono/index.js'
import { metriport } from './metriport/index.js'
import { ocl } from './ocl/index.js'
import type { UpstreamDefinition } from './types.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each upstream has its own env and settings types
export type AnyUpstream = UpstreamDefinition<any, any>

export const upstreams: readonly AnyUpstream[] = [
  drchrono,
  cliniko,
  ocl,
  metriport,
  clinia,
]

export function findUpstream (name: string): AnyUpstream | undefined {
  return upstreams.find(u => u.name === name)
}
