/**
 * The one list of upstreams. Adding an upstream is one line here and a folder beside this file.
 *
 * The gateway takes its registry from its configuration (`loadConfig(env, registry)`), never from this module
 * directly, so a test can serve a registry with an upstream of its own (test/upstreams/extra-upstream.test.ts).
 * A registry names the module it lives in: worker threads (api/job-body-worker.ts) load it from there.
 */
import { clinia } from './clinia/definition.js'
import { cliniko } from './cliniko/definition.js'
import { drchrono } from './drchrono/definition.js'
import { fhir } from './fhir/definition.js'
import { metriport } from './metriport/definition.js'
import { ocl } from './ocl/definition.js'
import { z } from 'zod'
import type { UpstreamDefinition } from './types.js'

export type AnyUpstream = UpstreamDefinition<any, any>

export class Registry {
  /**
   * @param upstreams the definitions, in the order the API documents them
   * @param module the URL of a module that exports this registry as `registry`
   */
  constructor (readonly upstreams: readonly AnyUpstream[], readonly module: string) {
    const names = upstreams.map(u => u.name)
    const twice = names.filter((name, i) => names.indexOf(name) !== i)
    if (twice.length > 0) throw new Error(`upstream ${twice.join(', ')} is registered twice`)
  }

  get names (): string[] {
    return this.upstreams.map(u => u.name)
  }

  find (name: string | null | undefined): AnyUpstream | undefined {
    return this.upstreams.find(u => u.name === name)
  }
}

export const registry = new Registry([
  drchrono,
  cliniko,
  ocl,
  metriport,
  clinia,
  fhir,
], import.meta.url)

/** The registry a worker thread was told about (its module URL). */
export async function loadRegistry (module: string): Promise<Registry> {
  const loaded = (await import(module) as { registry?: unknown }).registry
  if (!(loaded instanceof Registry)) throw new Error(`${module} exports no upstream registry`)
  return loaded
}

/** The names of an upstream's environment variables (for start-up hints and errors). */
export function variablesOf (definition: AnyUpstream): string[] {
  const schema = z.toJSONSchema(definition.env, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, unknown> }
  return Object.keys(schema.properties ?? {})
}
