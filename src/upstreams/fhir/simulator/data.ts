/**
 * The simulator's synthetic FHIR data, drawn from a seed: patients with their encounters, observations and
 * conditions, and organisations (outside any patient's compartment, so only system exports carry them). Each
 * resource is a pure function of (seed, type, index), so tests recompute exactly what an export must contain.
 */
import { int, pick, randomAt } from '../../simulator-kit/seeded-random.js'

/** The types the simulator holds, in export order (by name, as the SMART server orders its files). */
export const SIM_TYPES = ['Condition', 'Encounter', 'Observation', 'Organization', 'Patient'] as const
export type SimType = typeof SIM_TYPES[number]
/** Types in a patient's compartment: what Patient and Group exports carry. */
export const PATIENT_TYPES: readonly SimType[] = ['Condition', 'Encounter', 'Observation', 'Patient']

/** Resources per patient of each compartment type. */
const PER_PATIENT: Record<Exclude<SimType, 'Organization'>, number> = { Patient: 1, Encounter: 2, Observation: 3, Condition: 1 }

/** What the data is made from. */
export interface SimDataOptions {
  seed?: number
  /** Patients (default 12). */
  patients?: number
  /** Organisations (default 3). */
  organizations?: number
}

/** The groups the simulator knows, by id: which patients (by index) belong. */
export const SIM_GROUPS: Readonly<Record<string, (patient: number) => boolean>> = {
  BlueCrossBlueShield: p => p % 2 === 0,
  FallonHealth: p => p % 2 === 1,
}

/** One resource: its JSON text (what a file line holds), and what exports select it by. */
export interface SimResource {
  type: SimType
  id: string
  /** Index of the patient whose compartment holds it; null for organisations. */
  patient: number | null
  lastUpdated: string
  /** Top-level string members, for `_typeFilter`. */
  fields: Record<string, string>
  text: string
}

const TYPE_KIND: Record<SimType, number> = { Condition: 1, Encounter: 2, Observation: 3, Organization: 4, Patient: 5 }
const FROM = Date.parse('2018-01-01T00:00:00Z')
const SPAN = Date.parse('2025-01-01T00:00:00Z') - FROM
const GIVEN = ['Ana', 'Zoë', 'Björn', 'Kwame', 'Mei', 'José', 'Amara', 'Liam']
const FAMILY = ['Okafor', 'Müller', 'Nguyen', 'García', 'Smith', "O'Neil"]

function resource (seed: number, type: SimType, index: number, patients: number): SimResource {
  const r = randomAt(seed, TYPE_KIND[type], index)
  const lastUpdated = new Date(FROM + Math.floor(r() * SPAN / 1000) * 1000).toISOString().replace('.000Z', 'Z')
  const per = type === 'Organization' ? 0 : PER_PATIENT[type]
  const patient = type === 'Organization' ? null : Math.floor(index / per) % patients
  const id = `${type.toLowerCase()}-${index}`
  const subject = patient === null ? undefined : { reference: `Patient/patient-${patient}` }
  let body: Record<string, unknown>
  let fields: Record<string, string> = {}
  if (type === 'Patient') {
    fields = { gender: pick(r, ['female', 'male', 'other']), birthDate: `19${int(r, 30, 99)}-0${int(r, 1, 9)}-1${int(r, 0, 9)}` }
    body = { name: [{ given: [pick(r, GIVEN)], family: pick(r, FAMILY) }], ...fields }
  } else if (type === 'Organization') {
    fields = { name: `${pick(r, FAMILY)} ${pick(r, ['Clinic', 'Hospital', 'Health'])}` }
    body = { ...fields }
  } else if (type === 'Observation') {
    fields = { status: pick(r, ['final', 'amended', 'preliminary']) }
    body = { ...fields, code: { text: pick(r, ['Body weight', 'Heart rate', 'Glucose']) }, subject, valueQuantity: { value: int(r, 40, 180) + int(r, 0, 9) / 10, unit: pick(r, ['kg', '/min', 'mg/dL']) } }
  } else if (type === 'Encounter') {
    fields = { status: pick(r, ['finished', 'in-progress', 'cancelled']) }
    body = { ...fields, class: { code: pick(r, ['AMB', 'EMER', 'IMP']) }, subject }
  } else {
    fields = { recordedDate: lastUpdated.slice(0, 10) }
    body = { clinicalStatus: { text: pick(r, ['active', 'resolved']) }, code: { text: pick(r, ['Asthma', 'Hypertension', 'Fracture']) }, subject, ...fields }
  }
  const text = JSON.stringify({ resourceType: type, id, meta: { lastUpdated }, ...body })
  return { type, id, patient, lastUpdated, fields, text }
}

/** Every resource of `type`, in file order. */
export function resourcesOf (o: SimDataOptions, type: SimType): SimResource[] {
  const patients = o.patients ?? 12
  const count = type === 'Organization' ? (o.organizations ?? 3) : PER_PATIENT[type] * patients
  return Array.from({ length: count }, (_, i) => resource(o.seed ?? 1, type, i, patients))
}

/** Whether the resource at `index` of its type is among the deleted ones of an export with `_since` (pct %). */
export function isDeleted (o: SimDataOptions, r: SimResource, pct: number): boolean {
  if (pct <= 0) return false
  return randomAt(o.seed ?? 1, 90 + TYPE_KIND[r.type], Number(r.id.split('-').pop()))() * 100 < pct
}

/** The transaction Bundle line that lists one resource as deleted (the SMART server's form). */
export function deletedLine (r: SimResource): string {
  return JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'DELETE', url: `${r.type}/${r.id}` } }] })
}

/** The OperationOutcome line of a file the server failed to generate. */
export function failedFileLine (type: string): string {
  return JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'processing', diagnostics: `Failed to export ${type} resources` }] })
}
