/**
 * The fields each simulated list filters and sorts on, typed as Cliniko's docs type them ("Available filters"
 * per list): the type decides which operators a filter may use, and anything else is a 422, as Cliniko does.
 */

/** The resources the simulator holds records of; the list variants select from these. */
export const BASE_RESOURCES = [
  'patients', 'individual_appointments', 'group_appointments', 'appointment_types', 'attendees', 'businesses',
  'invoices', 'invoice_items', 'practitioners', 'products', 'services', 'treatment_notes', 'users',
] as const

export type BaseResource = typeof BASE_RESOURCES[number]

/** How a filter value is read and compared. */
export type FieldType = 'datetime' | 'date' | 'int64' | 'string' | 'boolean' | 'array'

const COMMON = { id: 'int64', created_at: 'datetime', updated_at: 'datetime' } as const

/** Filterable (and sortable) fields per resource. */
export const FIELDS: Record<BaseResource, Record<string, FieldType>> = {
  patients: {
    ...COMMON,
    archived_at: 'datetime',
    deleted_at: 'datetime',
    first_name: 'string',
    last_name: 'string',
    email: 'string',
    old_reference_id: 'string',
    date_of_birth: 'date',
  },
  individual_appointments: {
    ...COMMON,
    starts_at: 'datetime',
    ends_at: 'datetime',
    cancelled_at: 'datetime',
    deleted_at: 'datetime',
    patient_id: 'int64',
    practitioner_id: 'int64',
    business_id: 'int64',
    appointment_type_id: 'int64',
    did_not_arrive: 'boolean',
    patient_arrived: 'boolean',
  },
  group_appointments: {
    ...COMMON,
    archived_at: 'datetime',
    starts_at: 'datetime',
    ends_at: 'datetime',
    practitioner_id: 'int64',
    business_id: 'int64',
    appointment_type_id: 'int64',
  },
  appointment_types: {
    ...COMMON,
    archived_at: 'datetime',
    name: 'string',
    category: 'string',
    show_in_online_bookings: 'boolean',
    appointment_reminder_template_ids: 'array',
  },
  attendees: { ...COMMON, cancelled_at: 'datetime', patient_id: 'int64', booking_id: 'int64', arrived: 'boolean' },
  businesses: { ...COMMON, archived_at: 'datetime', business_name: 'string' },
  invoices: {
    ...COMMON,
    archived_at: 'datetime',
    number: 'int64',
    issue_date: 'date',
    status: 'int64',
    patient_id: 'int64',
    practitioner_id: 'int64',
  },
  invoice_items: { ...COMMON, archived_at: 'datetime', invoice_id: 'int64', name: 'string', code: 'string' },
  practitioners: { ...COMMON, archived_at: 'datetime', first_name: 'string', last_name: 'string', active: 'boolean' },
  products: { ...COMMON, archived_at: 'datetime', name: 'string', item_code: 'string' },
  services: { ...COMMON, archived_at: 'datetime', name: 'string', item_code: 'string' },
  treatment_notes: {
    ...COMMON,
    archived_at: 'datetime',
    patient_id: 'int64',
    practitioner_id: 'int64',
    draft: 'boolean',
    finalized_at: 'datetime',
  },
  users: { ...COMMON, archived_at: 'datetime', first_name: 'string', last_name: 'string', email: 'string', role: 'string', active: 'boolean' },
}

/** Which operators each type takes, from Cliniko's filtering documentation. */
export const OPERATORS: Record<FieldType, readonly string[]> = {
  date: ['=', '>=', '>', '<=', '<', '?', '!?'],
  datetime: ['>=', '>', '<=', '<', '?', '!?', '*'],
  int64: ['=', '!=', '>=', '>', '<=', '<', '?', '!?'],
  string: ['=', '!=', '~', '~~', '?', '!?'],
  boolean: ['=', '!='],
  array: ['~'],
}
