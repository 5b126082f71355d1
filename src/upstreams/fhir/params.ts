/**
 * FHIR Bulk Data job params: one strict zod schema per resource (system, patient, group). The simulator reads its
 * kick-off query with the same patterns, so the two cannot disagree.
 */
import { z } from 'zod'

export const FHIR_RESOURCES = ['system', 'patient', 'group'] as const
/** A FHIR export level a job can run. */
export type FhirResource = typeof FHIR_RESOURCES[number]

/** A FHIR resource type name (`Observation`); `_type` is a comma-separated list of them. */
export const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/
/** FHIR's instant: a datetime to the second with a time zone (`_since`). */
export const FHIR_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/
/** FHIR's id datatype (a Group's id goes into the URL path, so nothing else may pass). */
export const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/

/** The types of a `_type` value, or null when one of them is not a resource type name. */
export function typeList (value: string): string[] | null {
  const types = value.split(',').map(t => t.trim())
  return types.every(t => RESOURCE_TYPE.test(t)) ? types : null
}

const common = {
  _type: z.string().max(2000)
    .refine(v => typeList(v) !== null, 'expected comma-separated FHIR resource types, e.g. "Patient,Observation"')
    .optional()
    .meta({ description: 'Only these resource types (comma-separated); unset = every type the server exports.', example: 'Patient,Observation' }),
  _since: z.string()
    .regex(FHIR_INSTANT, { error: 'expected a FHIR instant, e.g. 2024-01-01T00:00:00Z', abort: true })
    .refine(v => Number.isFinite(Date.parse(v)), 'expected a FHIR instant, e.g. 2024-01-01T00:00:00Z')
    .optional()
    .meta({ description: 'Only resources changed at or after this FHIR instant; the manifest may then list deleted resources too.', example: '2024-01-01T00:00:00Z' }),
  _typeFilter: z.string().min(1).max(4000)
    .optional()
    .meta({ description: 'FHIR search queries that further restrict the types (`Type?param=value`, comma-separated), passed as is.', example: 'Observation?status=final' }),
}

const systemParams = z.strictObject(common)
const patientParams = z.strictObject(common)
const groupParams = z.strictObject({
  ...common,
  groupId: z.string().regex(FHIR_ID, 'expected a FHIR id (letters, digits, - and ., at most 64)')
    .meta({ description: 'The Group whose members\' data is exported.', example: 'BMCHealthNet' }),
})

/** The strict params schema of each resource; `groupId` exists only for `group`, so it is refused elsewhere. */
export const fhirParams: Record<FhirResource, z.ZodObject> = { system: systemParams, patient: patientParams, group: groupParams }

/** Validated params of any FHIR job. */
export interface FhirParams {
  _type?: string | undefined
  _since?: string | undefined
  _typeFilter?: string | undefined
  groupId?: string | undefined
}

/** The kick-off path below the base URL for a resource. */
export function kickOffPath (resource: FhirResource, params: FhirParams): string {
  if (resource === 'system') return '$export'
  if (resource === 'patient') return 'Patient/$export'
  return `Group/${encodeURIComponent(params.groupId ?? '')}/$export`
}
