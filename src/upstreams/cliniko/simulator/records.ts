/**
 * The simulator's fake clinic: every record is a pure function of (seed, resource, index), so nothing is stored
 * and tests can recompute the exact records a job must return. Records are ordered by created_at (index order),
 * Cliniko's default. Ids are int64 written as strings, as in Cliniko's current OpenAPI; ids and `legacy_id` are
 * all beyond 2^53, so any JSON.parse / JSON.stringify round trip on the way to the client shows up as changed bytes.
 */
import { int, pick, randomAt, type Rand } from '../../simulator-kit/seeded-random.js'
import { FIELDS, type BaseResource } from './fields.js'

export { BASE_RESOURCES, FIELDS, type BaseResource, type FieldType } from './fields.js'

/** Which list of a resource a record shows in: its main list, or one of the variant lists. */
export type ItemState = 'active' | 'archived' | 'deleted' | 'cancelled'

/** A generated record plus the values filters compare that are not fields of it (an appointment's patient_id). */
export interface SimItem {
  /** The record; bigint values are written as bare JSON numbers by {@link recordText}. */
  record: Record<string, unknown>
  facts: Record<string, string | null>
  state: ItemState
}

const HOUR_MS = 3_600_000
const DAY_MS = 24 * HOUR_MS
const START = Date.UTC(2023, 0, 1)
/** The clinic's "now": no record is updated after it, whatever the wall clock says. */
const NOW = Date.UTC(2025, 0, 31, 18)

const utc = (ms: number): string => new Date(Math.min(ms, NOW)).toISOString().slice(0, 19) + 'Z'
const money = (n: number): string => n.toFixed(2)

const RESOURCE_NUMBER = Object.fromEntries(Object.keys(FIELDS).map((r, n) => [r, BigInt(n + 1)])) as Record<BaseResource, bigint>

/** The int64 id of a resource's record `i`: increasing with i, and well past 2^53. */
export function idOf (resource: BaseResource, i: number): string {
  return (1_100_000_000_000_000_000n + RESOURCE_NUMBER[resource] * 10_000_000_000_000_000n + BigInt(i) * 37n).toString()
}

/** How a generator sees its record: the rng, the index, the clinic's link root. */
interface Gen { r: Rand, i: number, api: string }

const link = (g: Gen, path: string) => ({ links: { self: `${g.api}/${path}` } })
const ref = (g: Gen, resource: BaseResource, max: number): [string, { links: { self: string } }] => {
  const id = idOf(resource, int(g.r, 0, max - 1))
  return [id, link(g, `${resource}/${id}`)]
}

/** created_at grows with the index (so default order is index order); updated_at falls between it and NOW. */
function stamps (g: Gen, state: ItemState): Record<string, string | null> {
  const created = START + g.i * HOUR_MS + int(g.r, 0, 3599) * 1000
  const updated = Math.min(NOW, created + Math.floor(g.r() * 420 * DAY_MS))
  const changed = state === 'active' ? null : utc(created + Math.floor((updated - created) * g.r()))
  return {
    created_at: utc(created),
    updated_at: utc(updated),
    archived_at: state === 'archived' ? changed : null,
    deleted_at: state === 'deleted' ? changed : null,
    cancelled_at: state === 'cancelled' ? changed : null,
  }
}

const FIRST = ['Maria', 'James', 'Aiko', 'Olu', 'Sofia', 'Liam', 'Chen', 'Fatima', 'Noah', 'Ava', 'Mateo', 'Zoë']
const LAST = ['Garcia', 'Smith', 'Tanaka', 'Adeyemi', 'Rossi', 'Murphy', 'Wang', 'Khan', 'Brown', 'Nguyen', "O'Neil"]
const CITIES = [['Melbourne', 'VIC', '3000'], ['Sydney', 'NSW', '2000'], ['Brisbane', 'QLD', '4000'], ['Perth', 'WA', '6000']] as const
const TYPES = ['Initial consultation', 'Follow-up', 'Massage 60 min', 'Pilates class', 'Telehealth review']

function stateOf (r: Rand, odds: Partial<Record<ItemState, number>>): ItemState {
  let x = r()
  for (const [state, p] of Object.entries(odds) as Array<[ItemState, number]>) {
    if (x < p) return state
    x -= p
  }
  return 'active'
}

type Built = { record: Record<string, unknown>, facts?: Record<string, string | null>, state?: ItemState }

function patient (g: Gen): Built {
  const { r, i } = g
  const state = stateOf(r, { archived: 0.04, deleted: 0.03 })
  const first = pick(r, FIRST)
  const last = pick(r, LAST)
  const [city, region, postCode] = pick(r, CITIES)
  const id = idOf('patients', i)
  const { cancelled_at: _c, ...times } = stamps(g, state)
  return {
    state,
    record: {
      id,
      title: pick(r, ['', 'Mr', 'Ms', 'Mx', 'Dr']),
      first_name: first,
      last_name: last,
      date_of_birth: new Date(Date.UTC(int(r, 1935, 2020), int(r, 0, 11), int(r, 1, 28))).toISOString().slice(0, 10),
      email: r() < 0.85 ? `${first}.${last}.${i}@example.com`.toLowerCase().replace(/[^a-z0-9.@]/g, '') : null,
      sex: pick(r, ['Female', 'Male', 'Intersex', null]),
      patient_phone_numbers: [{ number: `04${String(int(r, 10_000_000, 99_999_999))}`, phone_type: 'Mobile' }],
      address_1: `${int(r, 1, 400)} ${pick(r, ['High', 'Station', 'Church', 'Park'])} St`,
      city,
      state: region,
      post_code: postCode,
      country: 'Australia',
      old_reference_id: r() < 0.3 ? `OLD-${String(i).padStart(6, '0')}` : null,
      // A numeric int64 in the wild (older Cliniko records, imports): written bare, beyond 2^53.
      legacy_id: 9_007_199_254_740_993_123n + BigInt(i) * 1_000n,
      notes: pick(r, ['', 'Prefers morning appointments.', 'Referred by GP.']),
      ...times,
      appointments: link(g, `patients/${id}/appointments`),
      links: { self: `${g.api}/patients/${id}` },
    },
  }
}

function individualAppointment (g: Gen): Built {
  const { r, i } = g
  const state = stateOf(r, { cancelled: 0.06, deleted: 0.03 })
  const starts = START + int(r, 0, 729) * DAY_MS + (8 + int(r, 0, 9)) * HOUR_MS
  const [patientId, patientLink] = ref(g, 'patients', 600)
  const [practitionerId, practitionerLink] = ref(g, 'practitioners', 12)
  const [businessId, businessLink] = ref(g, 'businesses', 3)
  const [typeId, typeLink] = ref(g, 'appointment_types', 24)
  const id = idOf('individual_appointments', i)
  const { archived_at: _a, ...times } = stamps(g, state)
  return {
    state,
    facts: { patient_id: patientId, practitioner_id: practitionerId, business_id: businessId, appointment_type_id: typeId },
    record: {
      id,
      starts_at: utc(starts),
      ends_at: utc(starts + pick(r, [30, 45, 60]) * 60_000),
      patient_name: `${pick(r, FIRST)} ${pick(r, LAST)}`,
      notes: pick(r, ['', 'Bring scans.']),
      did_not_arrive: r() < 0.04,
      patient_arrived: r() < 0.7,
      cancellation_note: state === 'cancelled' ? 'Patient unwell' : null,
      cancellation_reason: state === 'cancelled' ? int(r, 10, 50) : null,
      telehealth_url: null,
      ...times,
      patient: patientLink,
      practitioner: practitionerLink,
      business: businessLink,
      appointment_type: typeLink,
      links: { self: `${g.api}/individual_appointments/${id}` },
    },
  }
}

function generic (resource: BaseResource, fields: (g: Gen) => Built): (g: Gen) => Built {
  return g => {
    const built = fields(g)
    const { deleted_at: _d, cancelled_at: _c, ...times } = stamps(g, built.state ?? 'active')
    const id = idOf(resource, g.i)
    return { ...built, record: { id, ...built.record, ...times, links: { self: `${g.api}/${resource}/${id}` } } }
  }
}

const GENERATORS: Record<BaseResource, (g: Gen) => Built> = {
  patients: patient,
  individual_appointments: individualAppointment,
  group_appointments: generic('group_appointments', g => {
    const starts = START + int(g.r, 0, 729) * DAY_MS + (7 + int(g.r, 0, 10)) * HOUR_MS
    const [practitionerId, practitioner] = ref(g, 'practitioners', 12)
    const [businessId, business] = ref(g, 'businesses', 3)
    const [typeId, appointmentType] = ref(g, 'appointment_types', 24)
    return {
      facts: { practitioner_id: practitionerId, business_id: businessId, appointment_type_id: typeId },
      record: {
        starts_at: utc(starts),
        ends_at: utc(starts + HOUR_MS),
        max_attendees: int(g.r, 4, 12),
        notes: '',
        practitioner,
        business,
        appointment_type: appointmentType,
      },
    }
  }),
  appointment_types: generic('appointment_types', g => ({
    state: g.r() < 0.1 ? 'archived' : 'active',
    record: {
      name: `${pick(g.r, TYPES)} ${g.i + 1}`,
      category: pick(g.r, ['Physio', 'Massage', 'Classes', null]),
      color: pick(g.r, ['#0078d7', '#00a300', '#ffc40d']),
      description: null,
      duration_in_minutes: pick(g.r, [15, 30, 45, 60]),
      max_attendees: int(g.r, 1, 10),
      show_in_online_bookings: g.r() < 0.6,
      telehealth_enabled: g.r() < 0.3,
      appointment_reminder_template_ids: [String(int(g.r, 1, 5))],
    },
  })),
  attendees: generic('attendees', g => {
    const [patientId, patient] = ref(g, 'patients', 600)
    const [bookingId, booking] = ref(g, 'group_appointments', 300)
    const cancelled = g.r() < 0.08
    return {
      facts: { patient_id: patientId, booking_id: bookingId },
      record: { arrived: g.r() < 0.8, notes: '', cancelled_at: cancelled ? utc(START + int(g.r, 0, 700) * DAY_MS) : null, patient, booking },
    }
  }),
  businesses: generic('businesses', g => {
    const [city, region, postCode] = pick(g.r, CITIES)
    return {
      record: {
        business_name: `${city} Physio & Wellness`,
        address_1: `${int(g.r, 1, 200)} Main Rd`,
        city,
        state: region,
        post_code: postCode,
        country: 'Australia',
        time_zone: 'Australia/Melbourne',
      },
    }
  }),
  invoices: generic('invoices', g => {
    const [patientId, patient] = ref(g, 'patients', 600)
    const [practitionerId, practitioner] = ref(g, 'practitioners', 12)
    const net = int(g.r, 5000, 25000) / 100
    return {
      facts: { patient_id: patientId, practitioner_id: practitionerId },
      record: {
        number: 1000 + g.i,
        issue_date: new Date(START + int(g.r, 0, 729) * DAY_MS).toISOString().slice(0, 10),
        status: pick(g.r, [10, 20, 30]),
        net_amount: money(net),
        tax_amount: money(net * 0.1),
        total_amount: money(net * 1.1),
        patient,
        practitioner,
      },
    }
  }),
  invoice_items: generic('invoice_items', g => {
    const [invoiceId, invoice] = ref(g, 'invoices', 3000)
    return {
      facts: { invoice_id: invoiceId },
      record: {
        name: pick(g.r, TYPES),
        code: pick(g.r, ['560', '505', 'MS60', null]),
        quantity: '1.0',
        unit_price: money(int(g.r, 40, 180)),
        discount_percentage: '0.0',
        invoice,
      },
    }
  }),
  practitioners: generic('practitioners', g => ({
    record: {
      title: pick(g.r, ['', 'Dr']),
      first_name: pick(g.r, FIRST),
      last_name: pick(g.r, LAST),
      designation: pick(g.r, ['Physiotherapist', 'Massage Therapist', 'Pilates Instructor']),
      active: g.r() < 0.9,
      show_in_online_bookings: g.r() < 0.7,
    },
  })),
  products: generic('products', g => ({
    state: g.r() < 0.1 ? 'archived' : 'active',
    record: {
      name: `${pick(g.r, ['Foam roller', 'Theraband', 'Heat pack', 'Ankle brace'])} ${g.i + 1}`,
      item_code: `P${1000 + g.i}`,
      price: money(int(g.r, 5, 90)),
      stock_level: int(g.r, 0, 40),
    },
  })),
  services: generic('services', g => ({
    state: g.r() < 0.1 ? 'archived' : 'active',
    record: { name: `${pick(g.r, TYPES)} (service ${g.i + 1})`, item_code: `S${100 + g.i}`, price: money(int(g.r, 40, 200)) },
  })),
  treatment_notes: generic('treatment_notes', g => {
    const [patientId, patient] = ref(g, 'patients', 600)
    const [practitionerId, practitioner] = ref(g, 'practitioners', 12)
    const draft = g.r() < 0.1
    return {
      facts: { patient_id: patientId, practitioner_id: practitionerId },
      record: {
        title: pick(g.r, ['Initial assessment', 'Treatment', 'Review']),
        draft,
        finalized_at: draft ? null : utc(START + int(g.r, 0, 729) * DAY_MS),
        patient,
        practitioner,
      },
    }
  }),
  users: generic('users', g => ({
    record: {
      first_name: pick(g.r, FIRST),
      last_name: pick(g.r, LAST),
      email: `user${g.i}@clinic.example`,
      role: pick(g.r, ['administrator', 'practitioner', 'receptionist']),
      active: g.r() < 0.9,
      time_zone: 'Australia/Melbourne',
    },
  })),
}

/** The record at `index` of a resource, the same on every call. `api` is the root its links name. */
export function itemAt (resource: BaseResource, seed: number, index: number, api: string): SimItem {
  const r = randomAt(seed, Number(RESOURCE_NUMBER[resource]), index)
  const built = GENERATORS[resource]({ r, i: index, api })
  return { record: built.record, facts: built.facts ?? {}, state: built.state ?? 'active' }
}

/** A record's JSON text, bigints as bare numbers (JSON.stringify alone refuses them). */
export function recordText (record: Record<string, unknown>): string {
  return JSON.stringify(record, (_k, v: unknown) => (typeof v === 'bigint' ? `\u0000int64:${v}` : v))
    .replace(/"\\u0000int64:(-?\d+)"/g, '$1')
}
