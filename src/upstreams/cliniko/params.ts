/**
 * Cliniko list params: which path and envelope key each resource reads, the `q[]` filter syntax, and the strict
 * zod schemas. The simulator parses filters with the same {@link parseFilter}, so the two can never disagree.
 *
 * Filters are checked for syntax only (`field:OPvalue` with a documented operator): which fields a list accepts
 * is Cliniko's to say (a 422), and its lists grow fields faster than a copy of them here would be updated.
 */
import { z } from 'zod'

/** Where a resource lives: its path under /v1 and the key of its array in the envelope. */
export interface ClinikoList {
  path: string
  /** Variants keep their parent's key: /patients/deleted answers `{"patients":[...]}`. */
  key: string
}

const plain = (name: string): ClinikoList => ({ path: name, key: name })

/** Every resource a job can read, list variants included (docs/API.md, "Cliniko list variants"). */
export const CLINIKO_LISTS = {
  patients: plain('patients'),
  individual_appointments: plain('individual_appointments'),
  group_appointments: plain('group_appointments'),
  appointment_types: plain('appointment_types'),
  attendees: plain('attendees'),
  businesses: plain('businesses'),
  invoices: plain('invoices'),
  invoice_items: plain('invoice_items'),
  practitioners: plain('practitioners'),
  products: plain('products'),
  services: plain('services'),
  treatment_notes: plain('treatment_notes'),
  users: plain('users'),
  deleted_patients: { path: 'patients/deleted', key: 'patients' },
  archived_patients: { path: 'patients/archived', key: 'patients' },
  deleted_individual_appointments: { path: 'individual_appointments/deleted', key: 'individual_appointments' },
  cancelled_individual_appointments: { path: 'individual_appointments/cancelled', key: 'individual_appointments' },
} as const satisfies Record<string, ClinikoList>

export type ClinikoResource = keyof typeof CLINIKO_LISTS

export const CLINIKO_RESOURCES = Object.keys(CLINIKO_LISTS) as ClinikoResource[]

/**
 * The documented operators, longest first so that `~~` is not read as `~` followed by `~`. `?` is "is not
 * null", `!?` "is null", `*` "any value" (datetime only; lists archived or cancelled records a list would hide).
 * There is no "does not contain" operator in Cliniko's documentation, so `!~` is refused.
 */
export const FILTER_OPERATORS = ['!=', '>=', '<=', '!?', '~~', '=', '>', '<', '~', '?', '*'] as const

export type FilterOperator = typeof FILTER_OPERATORS[number]

/** Operators that take no value: `archived_at:?`, `archived_at:*`. */
export const VALUELESS: ReadonlySet<FilterOperator> = new Set(['?', '!?', '*'])

/** A parsed `q[]` filter string. */
export interface ClinikoFilter {
  field: string
  op: FilterOperator
  value: string
}

const FIELD = /^[a-z][a-z0-9_]{0,63}$/

/** `field:OPvalue` → its parts, or a reason it is malformed (the reason never repeats the value). */
export function parseFilter (text: string): ClinikoFilter | { error: string } {
  const colon = text.indexOf(':')
  if (colon < 0) return { error: 'expected FIELD:OPERATORVALUE, e.g. updated_at:>2024-01-01T00:00:00Z' }
  const field = text.slice(0, colon)
  if (!FIELD.test(field)) return { error: 'the field name must be lower-case letters, digits and underscores' }
  const rest = text.slice(colon + 1)
  const op = FILTER_OPERATORS.find(o => rest.startsWith(o))
  if (op === undefined) return { error: `unknown operator; expected one of ${FILTER_OPERATORS.join(' ')}` }
  const value = rest.slice(op.length)
  if (VALUELESS.has(op) && value !== '') return { error: `the operator ${op} takes no value` }
  if (!VALUELESS.has(op) && value === '') return { error: `the operator ${op} needs a value` }
  return { field, op, value }
}

/** A sort item is a field, optionally with `:asc` or `:desc`; items are comma separated. */
export const SORT = /^[a-z][a-z0-9_]*(:(asc|desc))?(,[a-z][a-z0-9_]*(:(asc|desc))?)*$/

/** Records per page: Cliniko's own default is 50; 100 (its maximum) halves the requests a job makes. */
export const DEFAULT_PER_PAGE = 100
export const MAX_PER_PAGE = 100

// The pattern shows the syntax in the OpenAPI document; the refinement adds what a pattern says badly (which
// operators take a value). Control characters are refused: in a filter they are a client bug, not a search.
// eslint-disable-next-line no-control-regex
const FILTER_SYNTAX = /^[a-z][a-z0-9_]{0,63}:(?:!=|>=|<=|!\?|~~|[=><~?*])[^\u0000-\u001f]*$/
const filterString = z.string().max(500)
  .regex(FILTER_SYNTAX, `expected FIELD:OPERATORvalue with an operator among ${FILTER_OPERATORS.join(' ')}, e.g. updated_at:>2024-01-01T00:00:00Z`)
  .superRefine((value, ctx) => {
    if (!FILTER_SYNTAX.test(value)) return // already reported by the pattern
    const parsed = parseFilter(value)
    if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error })
  })

function listSchema (example: string) {
  return z.strictObject({
    q: z.array(filterString).min(1).max(20).optional().meta({
      description: 'Filters, each `field:OPERATORvalue`, sent as repeated `q[]` and combined with AND. Operators: ' +
        '= != > >= < <= (dates, datetimes in UTC, numbers; `=` also takes a list `id:=1,2,3`), ~ (contains), ' +
        '~~ (wildcard with %), ? (is not null), !? (is null), * (any value). Which fields filter is Cliniko\'s to say.',
      example: [example],
    }),
    sort: z.string().max(200).regex(SORT, 'expected fields separated by commas, each optionally with :asc or :desc').optional()
      .meta({ description: 'Sort fields, e.g. `updated_at` or `starts_at,created_at:desc`. Default: created_at.', example: 'updated_at' }),
    order: z.enum(['asc', 'desc']).optional()
      .meta({ description: 'Direction of sort fields without their own `:asc`/`:desc`. Default: asc.', example: 'asc' }),
    per_page: z.int().min(1).max(MAX_PER_PAGE).default(DEFAULT_PER_PAGE)
      .meta({ description: `Records per upstream request, 1..${MAX_PER_PAGE}; fewer means more requests against the 200/minute limit.`, example: DEFAULT_PER_PAGE }),
  })
}

const INCREMENTAL = 'updated_at:>2024-01-01T00:00:00Z'

/** A filter that shows off each resource in its OpenAPI example. */
export const FILTER_EXAMPLES: Record<ClinikoResource, string> = {
  patients: INCREMENTAL,
  individual_appointments: 'starts_at:>=2024-01-01T00:00:00Z',
  group_appointments: 'starts_at:>=2024-01-01T00:00:00Z',
  appointment_types: INCREMENTAL,
  attendees: INCREMENTAL,
  businesses: INCREMENTAL,
  invoices: 'issue_date:>=2024-01-01',
  invoice_items: INCREMENTAL,
  practitioners: INCREMENTAL,
  products: INCREMENTAL,
  services: INCREMENTAL,
  treatment_notes: INCREMENTAL,
  users: INCREMENTAL,
  deleted_patients: 'deleted_at:>2024-01-01T00:00:00Z',
  archived_patients: 'archived_at:>2024-01-01T00:00:00Z',
  deleted_individual_appointments: 'deleted_at:>2024-01-01T00:00:00Z',
  cancelled_individual_appointments: 'cancelled_at:>2024-01-01T00:00:00Z',
}

/** The strict params schema of each resource: unknown keys, malformed filters and sorts are errors. */
export const clinikoParams = Object.fromEntries(
  CLINIKO_RESOURCES.map(r => [r, listSchema(FILTER_EXAMPLES[r])])
) as Record<ClinikoResource, ReturnType<typeof listSchema>>

/** Validated params, as the adapter sends them. */
export type ClinikoParams = z.output<ReturnType<typeof listSchema>>
