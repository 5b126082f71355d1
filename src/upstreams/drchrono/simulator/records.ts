/**
 * The simulator's fake practice: every record is a pure function of (seed, resource, index), so nothing is
 * stored, a 40 000-record list costs no memory, and tests can recompute the exact records a job must return.
 * Ids grow with the index, so "order by id" is index order. Timestamps are naive (no zone) like DrChrono's.
 */
import { int, pick, randomAt, type Rand } from '../../simulator-kit/seeded-random.js'
import type { DrchronoResource } from '../params.js'

/** A generated record plus the values filters compare that are not fields of it (e.g. a note's day). */
export interface SimItem {
  record: Record<string, unknown>
  facts: { day?: string, archived?: boolean }
}

const DAY_MS = 86_400_000
const START = Date.UTC(2023, 0, 1)
/** The fake practice's "now": no record is updated after it, whatever the wall clock says. */
const NOW = Date.UTC(2025, 0, 31, 18)

const naive = (ms: number): string => new Date(ms).toISOString().slice(0, 19)
const money = (n: number): string => n.toFixed(2)

/** created_at some time before `anchor`, updated_at between it and NOW. */
function stamps (r: Rand, anchor: number): { created_at: string, updated_at: string } {
  const created = anchor - int(r, 1, 60) * DAY_MS - int(r, 0, 86_399) * 1000
  const updated = Math.min(NOW, created + Math.floor(r() * 420 * DAY_MS))
  return { created_at: naive(created), updated_at: naive(updated) }
}

const DOCTORS = [101, 102, 103]
const OFFICES = [201, 202]
const patientId = (n: number): number => 50_000_001 + 2 * n
const patientRef = (r: Rand): number => patientId(Math.floor(r() * 600))
const STATUSES = ['Complete', 'Complete', 'Complete', 'Confirmed', 'Not Confirmed', 'Arrived', 'Checked In',
  'In Session', 'Cancelled', 'No Show', 'Rescheduled', '']
const REASONS = ['Follow-up', 'Annual physical', 'New patient visit', 'Lab review', 'Sick visit', 'Vaccination']
const FIRST = ['Maria', 'James', 'Aiko', 'Olu', 'Sofia', 'Liam', 'Chen', 'Fatima', 'Noah', 'Ava', 'Mateo', 'Zoe']
const LAST = ['Garcia', 'Smith', 'Tanaka', 'Adeyemi', 'Rossi', 'Murphy', 'Wang', 'Khan', 'Brown', 'Nguyen', 'Silva']
const CPT = [['99213', 'Office visit, est. patient, low', 110], ['99214', 'Office visit, est. patient, moderate', 165],
  ['99203', 'Office visit, new patient, low', 170], ['90686', 'Influenza vaccine', 35], ['36415', 'Venipuncture', 12]] as const
const PAYERS = [['Aetna', '60054'], ['Blue Cross Blue Shield', 'BCBS1'], ['Cigna', '62308'], ['Medicare', 'MCR01']] as const

/** An appointment's id: a string, as DrChrono sends it, and numeric like most of them. */
function appointmentAt (seed: number, i: number): SimItem {
  const r = randomAt(seed, 1, i)
  const scheduled = START + int(r, 0, 729) * DAY_MS + (8 * 60 + int(r, 0, 39) * 15) * 60_000
  const archived = r() < 0.03
  const record = {
    id: String(200_000_000 + 3 * i + int(r, 0, 2)),
    doctor: pick(r, DOCTORS),
    patient: patientRef(r),
    office: pick(r, OFFICES),
    exam_room: int(r, 1, 5),
    scheduled_time: naive(scheduled),
    duration: pick(r, [15, 30, 30, 45, 60]),
    status: pick(r, STATUSES),
    reason: pick(r, REASONS),
    notes: '',
    is_walk_in: r() < 0.05,
    allow_overlapping: false,
    recurring_appointment: false,
    billing_status: pick(r, ['Bill Insurance', 'Self Pay', '']),
    color: pick(r, ['#0078D7', '#00A300', '#FFC40D']),
    deleted_flag: archived,
    ...stamps(r, scheduled),
  }
  return { record, facts: { day: record.scheduled_time.slice(0, 10), archived } }
}

function patientAt (seed: number, i: number): SimItem {
  const r = randomAt(seed, 2, i)
  const first = pick(r, FIRST)
  const last = pick(r, LAST)
  const born = Date.UTC(int(r, 1935, 2020), int(r, 0, 11), int(r, 1, 28))
  return {
    record: {
      id: patientId(i),
      chart_id: `${last.slice(0, 2).toUpperCase()}${first.slice(0, 2).toUpperCase()}${String(i).padStart(6, '0')}`,
      first_name: first,
      last_name: last,
      gender: pick(r, ['Male', 'Female', 'Female', 'Male', 'Other', 'UNK']),
      date_of_birth: naive(born).slice(0, 10),
      email: `${first}.${last}.${i}@example.com`.toLowerCase(),
      cell_phone: `(555) 01${String(i % 100).padStart(2, '0')}-${String(int(r, 0, 9999)).padStart(4, '0')}`,
      city: pick(r, ['Oakland', 'Fresno', 'Austin', 'Denver']),
      state: pick(r, ['CA', 'TX', 'CO']),
      zip_code: String(int(r, 10000, 99999)),
      doctor: pick(r, DOCTORS),
      preferred_language: pick(r, ['eng', 'eng', 'eng', 'spa', 'chi', 'vie']),
      race: pick(r, ['white', 'black', 'asian', 'other', 'declined', 'blank']),
      ethnicity: pick(r, ['hispanic', 'not_hispanic', 'declined', 'blank']),
      patient_status: r() < 0.9 ? 'A' : 'I',
      ...stamps(r, START + int(r, 0, 729) * DAY_MS),
    },
    facts: {},
  }
}

function lineItemAt (seed: number, i: number): SimItem {
  const r = randomAt(seed, 3, i)
  const [code, description, price] = pick(r, CPT)
  const service = START + int(r, 0, 729) * DAY_MS
  const paid = Math.round(price * (0.4 + r() * 0.6) * 100) / 100
  return {
    record: {
      id: 70_000_001 + 2 * i,
      appointment: 200_000_000 + 3 * int(r, 0, 4999),
      doctor: pick(r, DOCTORS),
      office: pick(r, OFFICES),
      patient: patientRef(r),
      code,
      procedure_type: 'C',
      description,
      quantity: '1.00',
      price: money(price),
      ins1_paid: money(paid),
      balance_total: money(price - paid),
      billing_status: pick(r, ['Paid in Full', 'Balance Due', 'Submitted']),
      service_date: naive(service).slice(0, 10),
      posted_date: naive(service + int(r, 0, 20) * DAY_MS).slice(0, 10),
      ...stamps(r, service + 21 * DAY_MS),
    },
    facts: {},
  }
}

function transactionAt (seed: number, i: number): SimItem {
  const r = randomAt(seed, 4, i)
  const posted = START + int(r, 0, 729) * DAY_MS
  const [insName, payerId] = pick(r, PAYERS)
  return {
    record: {
      id: 80_000_001 + 2 * i,
      line_item: 70_000_001 + 2 * int(r, 0, 4999),
      appointment: 200_000_000 + 3 * int(r, 0, 4999),
      doctor: pick(r, DOCTORS),
      posted_date: naive(posted).slice(0, 10),
      check_date: naive(posted - int(r, 0, 10) * DAY_MS).slice(0, 10),
      ins_name: insName,
      payer_id: payerId,
      amount: money(int(r, 500, 25000) / 100),
      adjustment: money(int(r, 0, 5000) / 100),
      adjustment_reason: pick(r, ['45', '2', '1', '']),
      trace_number: String(int(r, 100000000, 999999999)),
      ...stamps(r, posted + DAY_MS),
    },
    facts: {},
  }
}

function prescriptionMessageAt (seed: number, i: number): SimItem {
  const r = randomAt(seed, 5, i)
  const sent = START + int(r, 0, 729) * DAY_MS
  return {
    record: {
      id: 90_000_001 + 2 * i,
      doctor: pick(r, DOCTORS),
      patient: patientRef(r),
      parent_message: i > 10 && r() < 0.3 ? 90_000_001 + 2 * int(r, 0, i - 1) : null,
      message_type: pick(r, ['NewRx', 'RefillRequest', 'RxChangeRequest', 'CancelRx']),
      message_direction: pick(r, ['outgoing', 'incoming']),
      status: pick(r, ['Sent', 'Verified', 'Error']),
      ...stamps(r, sent),
    },
    facts: {},
  }
}

function eligibilityCheckAt (seed: number, i: number): SimItem {
  const r = randomAt(seed, 6, i)
  const appointmentDay = START + int(r, 0, 729) * DAY_MS
  const [payerName, payerId] = pick(r, PAYERS)
  return {
    record: {
      id: 60_000_001 + 2 * i,
      appointment: String(200_000_000 + 3 * int(r, 0, 4999)),
      doctor: pick(r, DOCTORS),
      patient: patientRef(r),
      appointment_date: naive(appointmentDay).slice(0, 10),
      query_date: naive(appointmentDay - int(r, 0, 7) * DAY_MS).slice(0, 10),
      payer_name: payerName,
      payer_id: payerId,
      member_id: `M${int(r, 10_000_000, 99_999_999)}`,
      request_status: pick(r, ['Complete', 'Complete', 'Error']),
      coverage_status: pick(r, ['Active Coverage', 'Active Coverage', 'Inactive']),
      ...stamps(r, appointmentDay),
    },
    facts: {},
  }
}

/** One note per appointment: note i belongs to appointment i and is filtered by that appointment's day. */
function clinicalNoteAt (seed: number, i: number): SimItem {
  const r = randomAt(seed, 7, i)
  const { record: appointment, facts } = appointmentAt(seed, i)
  return {
    record: {
      id: 40_000_001 + 2 * i,
      appointment: appointment.id,
      patient: appointment.patient,
      doctor: appointment.doctor,
      office: appointment.office,
      archived: false,
      locked: r() < 0.8,
      pdf: `https://drchrono-uploaded-files.s3.amazonaws.com/clinical_notes/${40_000_001 + 2 * i}.pdf`,
      ...stamps(r, Date.parse(`${String(appointment.scheduled_time)}Z`) + 2 * DAY_MS),
    },
    facts: { day: facts.day },
  }
}

function fieldValueAt (seed: number, i: number): SimItem {
  const r = randomAt(seed, 8, i)
  return {
    record: {
      id: 30_000_001 + 2 * i,
      appointment: 200_000_000 + 3 * int(r, 0, 4999),
      clinical_note_field: 3001 + int(r, 0, 40),
      clinical_note_template: 401 + int(r, 0, 5),
      doctor: pick(r, DOCTORS),
      value: pick(r, ['True', 'False', '2', 'Patient reports improvement.', '120/80', 'Denies chest pain.']),
      ...stamps(r, START + int(r, 0, 729) * DAY_MS),
    },
    facts: {},
  }
}

const GENERATORS: Record<DrchronoResource, (seed: number, i: number) => SimItem> = {
  appointments: appointmentAt,
  patients: patientAt,
  line_items: lineItemAt,
  transactions: transactionAt,
  prescription_messages: prescriptionMessageAt,
  eligibility_checks: eligibilityCheckAt,
  clinical_notes: clinicalNoteAt,
  clinical_note_field_values: fieldValueAt,
}

/** What `verbose=true` adds: the nested fields DrChrono only computes on request. */
const VERBOSE: Partial<Record<DrchronoResource, (item: SimItem) => Record<string, unknown>>> = {
  appointments: item => ({ custom_fields: [], custom_vitals: [], reminders: [], status_transitions: [], extended_updated_at: item.record.updated_at }),
  patients: () => ({ custom_demographics: [], patient_flags: [], referring_doctor: {}, primary_insurance: {} }),
  line_items: () => ({ diagnosis_pointers: [1], modifiers: [] }),
  clinical_notes: () => ({ clinical_note_sections: [] }),
}

/** The record at `index` of a resource, the same on every call. */
export function itemAt (resource: DrchronoResource, seed: number, index: number): SimItem {
  return GENERATORS[resource](seed, index)
}

/** The record as DrChrono would send it, with the verbose fields when asked. */
export function recordAt (resource: DrchronoResource, seed: number, index: number, verbose: boolean): Record<string, unknown> {
  const item = itemAt(resource, seed, index)
  const extra = verbose ? VERBOSE[resource]?.(item) : undefined
  return extra ? { ...item.record, ...extra } : item.record
}
