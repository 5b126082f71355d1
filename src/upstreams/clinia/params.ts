/**
 * Clinia bulk operations: the strict zod schemas a write job's `operations` must pass at `POST /jobs`, shared by
 * the adapter and the simulator so the two can never disagree on structure.
 *
 * Resource operations follow the bulk-write document: `{"action":"CREATE","create":{id?,type,data,contained?,meta?}}`,
 * UPSERT the same with `id` required, DELETE `{type,id}`. Relationship operations follow Clinia's public API
 * reference (bundle `relationshipOperations`, single relationship create): `{type, from:{type,id}, to:{type,id},
 * data?, meta?}`. The relationship DELETE shape is UNCONFIRMED: either `{type,id}` (Clinia relationship ids are
 * `{fromId}.{toId}`) or `{type,from,to}` is accepted, since refusing the real shape would block every such job.
 */
import { z } from 'zod'

/** Resources (profiles' records) and relationships (edges between them) go to different bulk endpoints. */
export const CLINIA_RESOURCES = ['resources', 'relationships'] as const

export type CliniaResource = typeof CLINIA_RESOURCES[number]

export function isCliniaResource (value: string): value is CliniaResource {
  return (CLINIA_RESOURCES as readonly string[]).includes(value)
}

/** The operation verbs the bulk API knows. */
export const CLINIA_ACTIONS = ['CREATE', 'UPSERT', 'DELETE'] as const

export type CliniaAction = typeof CLINIA_ACTIONS[number]

/**
 * The most operations one job may carry. Receipts are one row each; past this a client should split the work
 * (and the gateway's request body limit is usually reached well before).
 */
export const MAX_JOB_OPERATIONS = 100_000

// Clinia's documented pattern for source, profile and relationship-definition keys.
const KEY = /^[a-zA-Z0-9-][\w-]{0,61}$/
const typeKey = z.string().regex(KEY, 'expected a type key: a letter, digit or "-", then up to 61 letters, digits, "_" or "-"')
const id = z.string().min(1, 'expected a non-empty id').max(512)
/** Profile properties: their names and types are the profile's business, checked by Clinia at submit. */
const properties = z.record(z.string(), z.unknown())
/** The metadata Clinia lets a writer set (historical imports); everything else in meta is system-managed. */
const meta = z.strictObject({
  createdAt: z.iso.datetime({ offset: true }).optional(),
  updatedAt: z.iso.datetime({ offset: true }).optional(),
  identifier: z.array(z.record(z.string(), z.unknown())).optional(),
})
const ref = z.strictObject({ type: typeKey, id })

const resourceCreate = z.strictObject({
  id: id.optional().describe('Optional: Clinia generates one when absent'),
  type: typeKey.describe('The profile (resource type), e.g. provider'),
  data: properties.describe('The resource\'s properties, as its profile defines them'),
  contained: properties.optional(),
  meta: meta.optional(),
})
const resourceUpsert = resourceCreate.extend({ id })
const resourceDelete = z.strictObject({ type: typeKey, id })

const relationshipWrite = z.strictObject({
  type: typeKey.describe('The relationship definition, e.g. worksAt'),
  from: ref,
  to: ref,
  data: properties.optional(),
  meta: meta.optional(),
})
const relationshipDelete = z.strictObject({
  type: typeKey,
  id: id.optional().describe('The relationship id ({fromId}.{toId}); or give from and to'),
  from: ref.optional(),
  to: ref.optional(),
}).superRefine((d, ctx) => {
  const byEnds = d.from !== undefined || d.to !== undefined
  if (d.id !== undefined && byEnds) ctx.addIssue({ code: 'custom', path: ['id'], message: 'give either id, or from and to, not both' })
  else if (d.id === undefined && d.from === undefined) ctx.addIssue({ code: 'custom', path: ['from'], message: 'required (or give id)' })
  else if (d.id === undefined && d.to === undefined) ctx.addIssue({ code: 'custom', path: ['to'], message: 'required (or give id)' })
})

const actionError = { error: 'action must be one of: CREATE, UPSERT, DELETE' }

const resourceOperation = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('CREATE'), create: resourceCreate }),
  z.strictObject({ action: z.literal('UPSERT'), upsert: resourceUpsert }),
  z.strictObject({ action: z.literal('DELETE'), delete: resourceDelete }),
], actionError)

const relationshipOperation = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('CREATE'), create: relationshipWrite }),
  z.strictObject({ action: z.literal('UPSERT'), upsert: relationshipWrite }),
  z.strictObject({ action: z.literal('DELETE'), delete: relationshipDelete }),
], actionError)

/** One resource operation, as validated. */
export type ResourceOperation = z.output<typeof resourceOperation>
/** One relationship operation, as validated. */
export type RelationshipOperation = z.output<typeof relationshipOperation>
/** Any Clinia bulk operation. */
export type CliniaOperation = ResourceOperation | RelationshipOperation

const list = <T extends z.ZodType>(op: T) => z.array(op)
  .min(1, 'expected at least one operation')
  .max(MAX_JOB_OPERATIONS, `at most ${MAX_JOB_OPERATIONS} operations per job: split them into several jobs`)

/** The one operation schema per resource, for the simulator's structural check. */
export const cliniaOperation: Record<CliniaResource, z.ZodType<CliniaOperation>> = {
  resources: resourceOperation,
  relationships: relationshipOperation,
}

/** The `operations` body field of each resource's write job. */
export const cliniaOperations: Record<CliniaResource, z.ZodType<CliniaOperation[]>> = {
  resources: list(resourceOperation).describe('Resource operations, processed in this order; results hold one receipt per operation'),
  relationships: list(relationshipOperation).describe('Relationship operations, processed in this order; results hold one receipt per operation'),
}

/** Clinia write jobs take no params: everything is in `operations`. */
export const cliniaParams = z.strictObject({})

/** The bulk-write document's own example (a provider CREATE): runs as is against the sandbox simulator. */
export const RESOURCE_EXAMPLE: ResourceOperation[] = [{
  action: 'CREATE',
  create: { type: 'provider', data: { name: 'John Doe', practiceNumber: 1020993, specialities: ['Pharmacist'] } },
}]

/** Links two records the sandbox simulator starts with; an UPSERT, so "Try it out" can run it twice. */
export const RELATIONSHIP_EXAMPLE: RelationshipOperation[] = [{
  action: 'UPSERT',
  upsert: {
    type: 'worksAt',
    from: { type: 'provider', id: '2eVocVVgjAWYJ74DifXluwVtSYs' },
    to: { type: 'office', id: '2dMyvjBs8mDQ7VJxjFPtWnFvaxp' },
    data: { role: 'Pharmacist' },
  },
}]

/** The body key holding an operation's target: `create`, `upsert` or `delete`. */
export function targetOf (op: CliniaOperation): Record<string, unknown> {
  const o = op as unknown as Record<string, Record<string, unknown>>
  return o[op.action.toLowerCase()] ?? {}
}
