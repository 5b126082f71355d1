/**
 * DrChrono bulk-list params: one table of filters per resource, from which both the strict zod schemas (job
 * validation, OpenAPI) and the simulator's query-string parser are built, so the two can never disagree.
 *
 * Filters are the ones DrChrono documents for each list endpoint (the same filters its non-bulk lists take);
 * `page` is not a param: the adapter walks every page itself.
 */
import { z } from 'zod'
import { isDay, parseInstant } from '../../lib/values.js'

export const DRCHRONO_RESOURCES = [
  'appointments', 'patients', 'line_items', 'transactions', 'prescription_messages',
  'eligibility_checks', 'clinical_notes', 'clinical_note_field_values',
] as const

export type DrchronoResource = typeof DRCHRONO_RESOURCES[number]

/**
 * How a filter's value is typed and compared:
 * - since: updated_at >= value (a date, or a datetime);
 * - date: the day equals value; range: the day within `YYYY-MM-DD/YYYY-MM-DD`; dateOrRange: either form;
 * - id: a positive integer id; appointmentId: DrChrono's string appointment id (usually numeric);
 * - text: an exact (case-insensitive) match; archived: true also lists archived (soft-deleted) records.
 */
export type FilterKind = 'since' | 'date' | 'range' | 'dateOrRange' | 'id' | 'appointmentId' | 'text' | 'archived'

export interface FilterSpec {
  kind: FilterKind
  description: string
  example: string | number | boolean
  /** For a range: the filter whose day it bounds (e.g. date_range bounds date). */
  of?: string
}

const since: FilterSpec = { kind: 'since', description: 'Only records updated at or after this date (YYYY-MM-DD) or datetime (ISO 8601).', example: '2024-02-01' }
const id = (what: string, example: number): FilterSpec => ({ kind: 'id', description: `Only records of this ${what} (DrChrono id).`, example })
const doctor = id('doctor', 101)
const office = id('office', 201)
const patient = id('patient', 50000123)
const appointment: FilterSpec = { kind: 'appointmentId', description: 'Only records of this appointment (DrChrono appointment id, a string that is usually numeric).', example: '200001234' }
const day = (what: string): FilterSpec => ({ kind: 'date', description: `Only records whose ${what} is this day (YYYY-MM-DD).`, example: '2024-03-15' })
const range = (what: string, of: string): FilterSpec => ({ kind: 'range', of, description: `Only records whose ${what} is within this inclusive range (YYYY-MM-DD/YYYY-MM-DD).`, example: '2024-01-01/2024-03-31' })
const dayOrRange = (what: string): FilterSpec => ({ kind: 'dateOrRange', description: `Only records whose ${what} is this day (YYYY-MM-DD) or within this inclusive range (YYYY-MM-DD/YYYY-MM-DD).`, example: '2024-01-01/2024-03-31' })
const text = (what: string, example: string): FilterSpec => ({ kind: 'text', description: `Only patients with this ${what} (exact match, case-insensitive).`, example })

/** Each resource's documented filters. */
export const DRCHRONO_FILTERS: Record<DrchronoResource, Record<string, FilterSpec>> = {
  appointments: {
    since,
    doctor,
    office,
    patient,
    date: day('scheduled day'),
    date_range: range('scheduled day', 'date'),
    status: { kind: 'text', description: 'Only appointments with this status, e.g. "Complete", "Cancelled", "No Show" (case-insensitive).', example: 'Complete' },
    show_archived: { kind: 'archived', description: 'Also list archived (deleted) appointments; they are left out by default.', example: true },
  },
  patients: {
    since,
    doctor,
    first_name: text('first name', 'Maria'),
    last_name: text('last name', 'Garcia'),
    gender: text('gender ("Male", "Female", "Other", "UNK")', 'Female'),
    date_of_birth: day('date of birth'),
    email: text('email address', 'maria.garcia@example.com'),
    chart_id: text('chart id', 'GAMA000123'),
    preferred_language: text('preferred language (ISO 639-2 code)', 'spa'),
    race: text('race code', 'white'),
    ethnicity: text('ethnicity code', 'hispanic'),
  },
  line_items: {
    since,
    doctor,
    office,
    patient,
    appointment,
    posted_date: dayOrRange('posting day'),
    service_date: dayOrRange('service day'),
  },
  transactions: {
    since,
    doctor,
    appointment,
    line_item: id('line item', 70000042),
    posted_date: dayOrRange('posting day'),
  },
  prescription_messages: {
    since,
    doctor,
    patient,
    parent_message: id('parent message', 90000007),
  },
  eligibility_checks: {
    doctor,
    patient,
    appointment,
    appointment_date: day('appointment day'),
    appointment_date_range: range('appointment day', 'appointment_date'),
    query_date: day('query day'),
    query_date_range: range('query day', 'query_date'),
  },
  clinical_notes: {
    since,
    doctor,
    office,
    patient,
    date: day('appointment day'),
    date_range: range('appointment day', 'date'),
  },
  clinical_note_field_values: {
    since,
    doctor,
    appointment,
    clinical_note_field: id('clinical note field (field type)', 3001),
    clinical_note_template: id('clinical note template', 401),
  },
}

/** The order DrChrono lists a resource in unless `order_by=updated_at`. */
export function defaultOrder (resource: DrchronoResource): 'scheduled_time' | 'id' {
  return resource === 'appointments' ? 'scheduled_time' : 'id'
}

/** clinical_note_field_values rows are tiny, so DrChrono allows far bigger pages for them. */
export function maxPageSize (resource: DrchronoResource): number {
  return resource === 'clinical_note_field_values' ? 20_000 : 1000
}

export const DEFAULT_PAGE_SIZE = 1000
export const MAX_PAGE = 1000

/** `YYYY-MM-DD/YYYY-MM-DD` → [from, to], or null when malformed or reversed. */
export function parseDayRange (value: string): [string, string] | null {
  const [from, to, extra] = value.split('/')
  if (extra !== undefined || from === undefined || to === undefined || !isDay(from) || !isDay(to) || from > to) return null
  return [from, to]
}

// Patterns as well as refinements: the patterns (and format) show in the OpenAPI document, the refinements
// reject what a pattern cannot (30 February, a reversed range).
const daySchema = z.iso.date({ error: 'expected a date as YYYY-MM-DD' })
const RANGE = /^\d{4}-\d{2}-\d{2}\/\d{4}-\d{2}-\d{2}$/
const rangeSchema = z.string().regex(RANGE, 'expected YYYY-MM-DD/YYYY-MM-DD')
  .refine(v => parseDayRange(v) !== null, 'expected real days with the first not after the second')

function filterSchema (spec: FilterSpec): z.ZodType {
  switch (spec.kind) {
    case 'since': return z.string().regex(/^\d{4}-\d{2}-\d{2}(T.+)?$/, 'expected a date (YYYY-MM-DD) or an ISO 8601 datetime')
      .refine(v => parseInstant(v) !== null, 'expected a date (YYYY-MM-DD) or an ISO 8601 datetime')
    case 'date': return daySchema
    case 'range': return rangeSchema
    case 'dateOrRange': return z.string().regex(/^\d{4}-\d{2}-\d{2}(\/\d{4}-\d{2}-\d{2})?$/, 'expected YYYY-MM-DD or YYYY-MM-DD/YYYY-MM-DD').refine(v => isDay(v) || parseDayRange(v) !== null, 'expected YYYY-MM-DD or YYYY-MM-DD/YYYY-MM-DD')
    case 'id': return z.int().positive()
    // Strings, as DrChrono returns them; a JSON number is accepted too since most of them are numeric.
    case 'appointmentId': return z.union([z.int().positive(), z.string().regex(/^[0-9A-Za-z_-]{1,64}$/, 'expected an appointment id')])
    case 'text': return z.string().trim().min(1).max(200)
    case 'archived': return z.boolean()
  }
}

function resourceSchema (resource: DrchronoResource) {
  const shape: Record<string, z.ZodType> = {}
  for (const [name, spec] of Object.entries(DRCHRONO_FILTERS[resource])) {
    shape[name] = filterSchema(spec).optional().meta({ description: spec.description, example: spec.example })
  }
  const order = defaultOrder(resource)
  shape.order_by = z.enum(['updated_at', order]).optional()
    .meta({ description: `Sort order of the results: "updated_at", or "${order}" (DrChrono's default for this list).`, example: 'updated_at' })
  shape.verbose = z.boolean().optional()
    .meta({ description: 'Ask DrChrono for the verbose record form (extra fields; pages take longer to generate).', example: true })
  shape.page_size = z.int().min(1).max(maxPageSize(resource)).default(DEFAULT_PAGE_SIZE)
    .meta({ description: `Records per upstream page, 1..${maxPageSize(resource)}. Larger pages mean fewer requests but slower generation.`, example: DEFAULT_PAGE_SIZE })
  return z.strictObject(shape)
}

/** The strict params schema of each resource: unknown keys, wrong types and malformed dates are errors. */
export const drchronoParams = Object.fromEntries(
  DRCHRONO_RESOURCES.map(r => [r, resourceSchema(r)])
) as Record<DrchronoResource, z.ZodObject>

/** Validated params of any resource, as the adapter sends them. */
export type DrchronoParams = Record<string, string | number | boolean | undefined>
