/** The one list of upstreams. Adding an upstream is one line here and a folder beside this file. */
import { clinia } from './clinia/definition.js'
import { cliniko } from './cliniko/definition.js'
import { drchrono } from './drchrono/definition.js'
import { fhir } from './fhir/definition.js'
import { metriport } from './metriport/definition.js'
import { ocl } from './ocl/definition.js'
import { z } from 'zod'
import type { UpstreamDefinition } from './types.js'

export type AnyUpstream = UpstreamDefinition<any, any>

export const upstreams: readonly AnyUpstream[] = [
  drchrono,
  cliniko,
  ocl,
  metriport,
  clinia,
  fhir,
]

export function findUpstream (name: string): AnyUpstream | undefined {
  return upstreams.find(u => u.name === name)
}

/** The names of an upstream's environment variables (for start-up hints and errors). */
export function variablesOf (definition: AnyUpstream): string[] {
  const schema = z.toJSONSchema(definition.env, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, unknown> }
  return Object.keys(schema.properties ?? {})
}
