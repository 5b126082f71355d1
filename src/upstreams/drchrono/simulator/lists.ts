/**
 * What a simulated list contains: the query string read the way DrChrono (Django REST Framework) reads it,
 * filters, ordering, and {@link expectedRecords}, the same code path tests use to know the exact answer.
 */
import {
  DEFAULT_PAGE_SIZE, DRCHRONO_FILTERS, MAX_PAGE, defaultOrder, maxPageSize, parseDayRange,
  type DrchronoResource, type FilterSpec,
} from '../params.js'
import { itemAt, recordAt, type SimItem } from './records.js'
import { DRF_FALSE, DRF_TRUE } from '../../simulator-kit/django-rest.js'
import { recentlyComputed, recordCountOf, type SeededRecords } from '../../simulator-kit/lists.js'
import { isDay, parseInstant } from '../../../lib/values.js'

/** Typed filter values plus order and verbosity: what decides the records of a list (page_size only slices it). */
export type ListParams = Record<string, string | number | boolean | undefined>

/** A validated POST: the list's params, and which slice of it this uuid serves. */
export interface ListRequest {
  params: ListParams
  page: number
  pageSize: number
}

/** DRF-style field errors: `{ "page_size": ["Ensure this value is less than or equal to 1000."] }`. */
export type FieldErrors = Record<string, string[]>

/** Records per resource in the fake practice. */
export type RecordCounts = Record<DrchronoResource, number>

export const DEFAULT_RECORD_COUNTS: RecordCounts = {
  appointments: 2500,
  patients: 1200,
  line_items: 3000,
  transactions: 2000,
  prescription_messages: 600,
  eligibility_checks: 800,
  clinical_notes: 1500,
  clinical_note_field_values: 6000,
}

const INT = /^[0-9]+$/

function integer (name: string, raw: string, min: number, max: number, errors: FieldErrors): number | undefined {
  if (!INT.test(raw)) { errors[name] = ['A valid integer is required.']; return undefined }
  const n = Number(raw)
  if (n < min) errors[name] = [`Ensure this value is greater than or equal to ${min}.`]
  else if (n > max) errors[name] = [`Ensure this value is less than or equal to ${max}.`]
  return n
}

function filterValue (name: string, spec: FilterSpec, raw: string, errors: FieldErrors): string | number | boolean | undefined {
  switch (spec.kind) {
    case 'since':
      if (parseInstant(raw) === null) errors[name] = ['Datetime has wrong format. Use one of these formats instead: YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].']
      return raw
    case 'date':
      if (!isDay(raw)) errors[name] = ['Date has wrong format. Use one of these formats instead: YYYY-MM-DD.']
      return raw
    case 'range':
      if (parseDayRange(raw) === null) errors[name] = ['Enter a valid date range: YYYY-MM-DD/YYYY-MM-DD.']
      return raw
    case 'dateOrRange':
      if (!isDay(raw) && parseDayRange(raw) === null) errors[name] = ['Enter a valid date (YYYY-MM-DD) or date range (YYYY-MM-DD/YYYY-MM-DD).']
      return raw
    case 'id':
      return integer(name, raw, 1, Number.MAX_SAFE_INTEGER, errors)
    case 'appointmentId':
    case 'text':
      if (raw.trim() === '') errors[name] = ['This field may not be blank.']
      return raw
    case 'archived':
      if (DRF_TRUE.has(raw)) return true
      if (DRF_FALSE.has(raw)) return false
      errors[name] = ['Must be a valid boolean.']
      return undefined
  }
}

/**
 * Reads a bulk-list POST's query string. Stricter than DrChrono on one point, on purpose: a parameter the
 * endpoint does not know (a misspelt filter) is a 400 here, where DRF would silently ignore it and return the
 * whole unfiltered list. An adapter that sends a key DrChrono would drop is a bug we want tests to see.
 */
export function readListQuery (resource: DrchronoResource, query: Record<string, unknown>): { request: ListRequest } | { errors: FieldErrors } {
  const errors: FieldErrors = {}
  const filters = DRCHRONO_FILTERS[resource]
  const params: ListParams = {}
  let page = 1
  let pageSize = DEFAULT_PAGE_SIZE
  for (const [name, value] of Object.entries(query)) {
    if (typeof value !== 'string') { errors[name] = ['Expected a single value.']; continue }
    const spec = filters[name]
    if (spec) params[name] = filterValue(name, spec, value, errors)
    else if (name === 'page') page = integer(name, value, 1, MAX_PAGE, errors) ?? page
    else if (name === 'page_size') pageSize = integer(name, value, 1, maxPageSize(resource), errors) ?? pageSize
    else if (name === 'order_by') {
      if (value === 'updated_at' || value === defaultOrder(resource)) params.order_by = value
      else errors[name] = [`Select a valid choice. ${value} is not one of the available choices.`]
    } else if (name === 'verbose') {
      if (DRF_TRUE.has(value)) params.verbose = true
      else if (DRF_FALSE.has(value)) params.verbose = false
      else errors[name] = ['Must be a valid boolean.']
    } else errors[name] = ['Unknown query parameter.']
  }
  return Object.keys(errors).length > 0 ? { errors } : { request: { params, page, pageSize } }
}

const updatedMs = (item: SimItem): number => Date.parse(`${String(item.record.updated_at)}Z`)
const dayOf = (v: unknown): string => String(v).slice(0, 10)
/** `date` filters an appointment's (or its note's) scheduled day; other date filters name a record field. */
const dayOfFilter = (item: SimItem, name: string): string | undefined =>
  name === 'date' ? item.facts.day : item.record[name] == null ? undefined : dayOf(item.record[name])

function matches (item: SimItem, name: string, spec: FilterSpec, value: string | number | boolean): boolean {
  const field = item.record[name]
  switch (spec.kind) {
    case 'since': return updatedMs(item) >= (parseInstant(String(value)) ?? Infinity)
    case 'date': return dayOfFilter(item, name) === value
    case 'range': {
      const [from, to] = parseDayRange(String(value)) ?? ['', '']
      const day = dayOfFilter(item, spec.of ?? name)
      return day !== undefined && day >= from && day <= to
    }
    case 'dateOrRange': {
      const range = parseDayRange(String(value))
      return range ? dayOf(field) >= range[0] && dayOf(field) <= range[1] : dayOf(field) === value
    }
    case 'id': return Number(field) === Number(value)
    case 'appointmentId': return String(item.record.appointment) === String(value)
    case 'text': return String(field ?? '').toLowerCase() === String(value).trim().toLowerCase()
    case 'archived': return true // handled below: it widens the list rather than narrowing it
  }
}

/** The indices of the records a list holds, in its order. Pure: same input, same answer. */
export function selectIndices (resource: DrchronoResource, params: ListParams, seed: number, count: number): Int32Array {
  const filters = Object.entries(DRCHRONO_FILTERS[resource])
    .filter(([name]) => params[name] !== undefined)
    .map(([name, spec]) => [name, spec, params[name]] as const)
  const hideArchived = resource === 'appointments' && params.show_archived !== true
  const order = params.order_by ?? defaultOrder(resource)
  const kept: Array<{ index: number, key: string }> = []
  for (let i = 0; i < count; i++) {
    const item = itemAt(resource, seed, i)
    if (hideArchived && item.facts.archived === true) continue
    if (!filters.every(([name, spec, value]) => value === undefined || matches(item, name, spec, value))) continue
    kept.push({ index: i, key: order === 'id' ? '' : String(item.record[order as string]) })
  }
  // Ties (same updated_at) keep id order, so the list is fully determined.
  if (order !== 'id') kept.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.index - b.index))
  return Int32Array.from(kept, k => k.index)
}

/** Options that shape the fake data: the same ones the simulator takes. */
export type DataOptions = SeededRecords<DrchronoResource>

/**
 * Every record a job with these params must end with, in order (page after page), computed without HTTP.
 * `params` are the job's params (typed as a job carries them); page_size does not change the result.
 */
export function expectedRecords (resource: DrchronoResource, params: ListParams, options: DataOptions = {}): Array<Record<string, unknown>> {
  const seed = options.seed ?? 1
  const { page_size: _pageSize, ...listParams } = params
  const indices = selectIndices(resource, listParams, seed, recordCountOf(resource, options.recordCount, DEFAULT_RECORD_COUNTS))
  return Array.from(indices, i => recordAt(resource, seed, i, params.verbose === true))
}

/** The indices of a list's records, remembered for the next pages; verbosity does not change which records. */
export function selectionCache (seed: number, recordCount: DataOptions['recordCount']): (resource: DrchronoResource, params: ListParams) => Int32Array {
  return recentlyComputed(
    (resource: DrchronoResource, params: ListParams) => selectIndices(resource, params, seed, recordCountOf(resource, recordCount, DEFAULT_RECORD_COUNTS)),
    (resource, params) => JSON.stringify([resource, Object.entries(params).filter(([k]) => k !== 'verbose').sort()])
  )
}
