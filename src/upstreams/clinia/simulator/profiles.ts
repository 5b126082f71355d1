/**
 * The simulator's source schema: a couple of profiles and one relationship definition, and the synchronous
 * check Clinia runs on every operation at submit ("well formed and conforms to the source's profiles"). An
 * operation failing it makes the whole request REJECTED. Messages name properties, never values.
 */
import { cliniaOperation, targetOf, type CliniaOperation, type CliniaResource } from '../params.js'

/** The property types the simulator's profiles use. */
export type PropertyType = 'string' | 'integer' | 'number' | 'boolean' | 'string[]'

/** A resource profile: its properties and which of them a resource must have. */
export interface Profile {
  properties: Record<string, PropertyType>
  required: readonly string[]
}

/** A relationship definition: which profiles it links, and the properties an edge may carry. */
export interface RelationshipDefinition extends Profile {
  from: string
  to: string
}

/** The bulk-write document's "Simple Profile" provider, and an office to link it to. */
export const SIM_PROFILES: Record<string, Profile> = {
  provider: { properties: { name: 'string', practiceNumber: 'integer', specialities: 'string[]' }, required: ['name'] },
  office: { properties: { name: 'string', phone: 'string', city: 'string', postalCode: 'string' }, required: ['name'] },
}

export const SIM_RELATIONSHIPS: Record<string, RelationshipDefinition> = {
  worksAt: { from: 'provider', to: 'office', properties: { role: 'string' }, required: [] },
}

function hasType (value: unknown, type: PropertyType): boolean {
  switch (type) {
    case 'string': return typeof value === 'string'
    case 'integer': return Number.isSafeInteger(value)
    case 'number': return typeof value === 'number' && Number.isFinite(value)
    case 'boolean': return typeof value === 'boolean'
    case 'string[]': return Array.isArray(value) && value.every(v => typeof v === 'string')
  }
}

function checkProperties (data: Record<string, unknown> | undefined, profile: Profile, where: string): string | null {
  const values = data ?? {}
  for (const [name, value] of Object.entries(values)) {
    const type = profile.properties[name]
    if (type === undefined) return `${where}.${name} is not a property of the profile`
    if (!hasType(value, type)) return `${where}.${name} must be of type ${type}`
  }
  for (const name of profile.required) if (!(name in values)) return `${where}.${name} is required`
  return null
}

function checkMeta (meta: { createdAt?: string, updatedAt?: string } | undefined, now: number): string | null {
  if (meta === undefined) return null
  const created = meta.createdAt === undefined ? undefined : Date.parse(meta.createdAt)
  const updated = meta.updatedAt === undefined ? undefined : Date.parse(meta.updatedAt)
  if (updated !== undefined && created === undefined) return 'meta.updatedAt requires meta.createdAt'
  if (created !== undefined && updated !== undefined && updated < created) return 'meta.updatedAt must not be before meta.createdAt'
  if ((created ?? 0) > now || (updated ?? 0) > now) return 'meta dates must not be in the future'
  return null
}

/** The operation, validated; or why Clinia refuses it at submit. */
export function checkOperation (resource: CliniaResource, raw: unknown, now = Date.now()): { op: CliniaOperation } | { error: string } {
  const parsed = cliniaOperation[resource].safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    return { error: `malformed operation at /${issue?.path.join('/') ?? ''}` }
  }
  const op = parsed.data
  const target = targetOf(op)
  const where = op.action.toLowerCase()
  const type = String(target.type)
  const withData = op.action !== 'DELETE'
  let error: string | null
  if (resource === 'resources') {
    const profile = SIM_PROFILES[type]
    if (profile === undefined) return { error: `${where}.type: unknown profile` }
    const contained = target.contained as Record<string, unknown> | undefined
    error = !withData
      ? null
      : contained !== undefined && Object.keys(contained).length > 0
        ? `${where}.contained: the profile declares no contained resources`
        : checkProperties(target.data as Record<string, unknown>, profile, `${where}.data`)
  } else {
    const definition = SIM_RELATIONSHIPS[type]
    if (definition === undefined) return { error: `${where}.type: unknown relationship definition` }
    const from = target.from as { type: string } | undefined
    const to = target.to as { type: string } | undefined
    error = from !== undefined && from.type !== definition.from
      ? `${where}.from.type must be ${definition.from}`
      : to !== undefined && to.type !== definition.to
        ? `${where}.to.type must be ${definition.to}`
        : withData ? checkProperties(target.data as Record<string, unknown> | undefined, definition, `${where}.data`) : null
  }
  error ??= withData ? checkMeta(target.meta as { createdAt?: string, updatedAt?: string } | undefined, now) : null
  return error === null ? { op } : { error }
}
