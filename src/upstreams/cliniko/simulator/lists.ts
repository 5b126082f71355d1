/**
 * What a simulated list contains: the query string read the way the simulator's Cliniko reads it (422 for
 * anything it does not understand), filters, sorting, and {@link expectedRecords}, the same code path tests use
 * to know the exact answer.
 */
import { MAX_PER_PAGE, SORT, parseFilter, type ClinikoFilter, type ClinikoResource } from '../params.js'
import { FIELDS, OPERATORS, type FieldType } from './fields.js'
import { itemAt, recordText, type BaseResource, type ItemState, type SimItem } from './records.js'
import { shardBaseUrl } from '../env.js'
import { recentlyComputed, recordCountOf, type SeededRecords } from '../../simulator-kit/lists.js'

/** Which records a list shows: those of `base` in `state`. Main lists also show `liftable` states when filtered on. */
interface ListSource { base: BaseResource, state: ItemState }

const VARIANTS: Partial<Record<ClinikoResource, ListSource>> = {
  deleted_patients: { base: 'patients', state: 'deleted' },
  archived_patients: { base: 'patients', state: 'archived' },
  deleted_individual_appointments: { base: 'individual_appointments', state: 'deleted' },
  cancelled_individual_appointments: { base: 'individual_appointments', state: 'cancelled' },
}

export function sourceOf (resource: ClinikoResource): ListSource {
  return VARIANTS[resource] ?? { base: resource as BaseResource, state: 'active' }
}

/** A main list hides archived and cancelled records unless a filter names their timestamp (`archived_at:*`). */
const LIFTED_BY: Partial<Record<ItemState, string>> = { archived: 'archived_at', cancelled: 'cancelled_at' }

/** Records per base resource in the fake clinic. */
export type RecordCounts = Record<BaseResource, number>

export const DEFAULT_RECORD_COUNTS: RecordCounts = {
  patients: 2400,
  individual_appointments: 4000,
  group_appointments: 300,
  appointment_types: 24,
  attendees: 1500,
  businesses: 3,
  invoices: 3000,
  invoice_items: 5000,
  practitioners: 12,
  products: 60,
  services: 40,
  treatment_notes: 2500,
  users: 15,
}

/** A sort key and its direction. */
export interface SortKey { field: string, desc: boolean }

/** What decides a list's records (page and per_page only slice it). */
export interface ListQuery { filters: ClinikoFilter[], sort: SortKey[] }

/** A validated request: the list, and which slice of it to serve. */
export interface PageRequest extends ListQuery { page: number, perPage: number }

/** Cliniko's 422 `errors`: field → messages. */
export type FieldErrors = Record<string, string[]>

const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/
const DATE = /^[\d*]{4}-[\d*]{2}-[\d*]{2}$/
const INT = /^-?\d{1,19}$/

function valueError (type: FieldType, f: ClinikoFilter): string | null {
  if (f.op === '?' || f.op === '!?' || f.op === '*') return null
  switch (type) {
    case 'datetime': return DATETIME.test(f.value) && Number.isFinite(Date.parse(f.value)) ? null : 'must be a UTC datetime such as 2014-08-30T18:00:00Z'
    case 'date': return DATE.test(f.value) && (f.op === '=' || !f.value.includes('*')) ? null : 'must be a date as YYYY-MM-DD (* wildcards with = only)'
    case 'int64': return (f.op === '=' ? f.value.split(',') : [f.value]).every(v => INT.test(v)) ? null : 'must be an integer (or a list of them with =)'
    case 'boolean': return f.value === 'true' || f.value === 'false' ? null : 'must be true or false'
    default: return null
  }
}

/** Reads a list request's query; fastify gives repeated keys as arrays. */
export function readPageQuery (resource: ClinikoResource, query: Record<string, unknown>): { request: PageRequest } | { errors: FieldErrors } {
  const fields = FIELDS[sourceOf(resource).base]
  const errors: FieldErrors = {}
  const add = (name: string, message: string): void => { (errors[name] ??= []).push(message) }
  const request: PageRequest = { filters: [], sort: [{ field: 'created_at', desc: false }], page: 1, perPage: 50 }
  let order: 'asc' | 'desc' = 'asc'
  let sort: string | undefined
  for (const [name, raw] of Object.entries(query)) {
    const values = Array.isArray(raw) ? raw.map(String) : [String(raw)]
    if (name === 'q[]' || name === 'q') {
      for (const text of values) {
        const f = parseFilter(text)
        if ('error' in f) { add('q', `is invalid: ${f.error}`); continue }
        const type = fields[f.field]
        if (type === undefined) { add('q', `cannot filter on ${f.field}`); continue }
        if (!OPERATORS[type].includes(f.op)) { add('q', `${f.field} does not take the ${f.op} operator`); continue }
        const bad = valueError(type, f)
        if (bad !== null) add('q', `${f.field} ${bad}`)
        else request.filters.push(f)
      }
    } else if (values.length !== 1) {
      add(name, 'must be given once')
    } else if (name === 'sort') {
      sort = values[0]
    } else if (name === 'order') {
      if (values[0] === 'asc' || values[0] === 'desc') order = values[0]
      else add(name, 'must be asc or desc')
    } else if (name === 'per_page' || name === 'page') {
      const n = /^\d{1,9}$/.test(values[0] ?? '') ? Number(values[0]) : NaN
      if (!(n >= 1)) add(name, 'must be a positive integer')
      else if (name === 'per_page' && n > MAX_PER_PAGE) add(name, `must be less than or equal to ${MAX_PER_PAGE}`)
      else if (name === 'page') request.page = n
      else request.perPage = n
    } else {
      add(name, 'is not a permitted parameter')
    }
  }
  if (sort !== undefined) {
    if (!SORT.test(sort)) add('sort', 'is invalid')
    else {
      request.sort = sort.split(',').map(item => {
        const [field = '', dir] = item.split(':')
        if (fields[field] === undefined) add('sort', `cannot sort on ${field}`)
        return { field, desc: (dir ?? order) === 'desc' }
      })
    }
  } else {
    request.sort = [{ field: 'created_at', desc: order === 'desc' }]
  }
  return Object.keys(errors).length > 0 ? { errors } : { request }
}

const valueOf = (item: SimItem, field: string): unknown => (field in item.facts ? item.facts[field] : item.record[field])

function like (pattern: string): RegExp {
  const body = pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/%/g, '.*').replace(/_/g, '.')
  return new RegExp(`^${body}$`, 'is')
}

function compare (type: FieldType, a: unknown, b: string): number {
  if (type === 'int64') { const x = BigInt(String(a)); const y = BigInt(b); return x < y ? -1 : x > y ? 1 : 0 }
  if (type === 'datetime') return Date.parse(String(a)) - Date.parse(b)
  const s = String(a)
  return s < b ? -1 : s > b ? 1 : 0
}

function matches (item: SimItem, type: FieldType, f: ClinikoFilter): boolean {
  const v = valueOf(item, f.field)
  if (f.op === '*') return true
  if (f.op === '?') return v !== null && v !== undefined
  if (f.op === '!?') return v === null || v === undefined
  if (v === null || v === undefined) return false // SQL: a comparison with NULL is never true
  switch (f.op) {
    case '~': return Array.isArray(v) ? v.map(String).includes(f.value) : String(v).toLowerCase().includes(f.value.toLowerCase())
    case '~~': return like(f.value).test(String(v))
    case '=':
      if (type === 'int64') return f.value.split(',').some(x => compare(type, v, x) === 0)
      if (type === 'date' && f.value.includes('*')) return [...f.value].every((c, k) => c === '*' || c === String(v)[k])
      return String(v) === f.value
    case '!=': return type === 'int64' ? compare(type, v, f.value) !== 0 : String(v) !== f.value
    case '>': return compare(type, v, f.value) > 0
    case '>=': return compare(type, v, f.value) >= 0
    case '<': return compare(type, v, f.value) < 0
    case '<=': return compare(type, v, f.value) <= 0
  }
}

/** Sort order of two values of one field: nulls last ascending (first descending), as Postgres. */
function orderOf (type: FieldType, a: unknown, b: unknown): number {
  const na = a === null || a === undefined
  const nb = b === null || b === undefined
  if (na || nb) return na === nb ? 0 : na ? 1 : -1
  if (type === 'boolean') return Number(a) - Number(b)
  return compare(type, a, String(b))
}

/** Options that shape the fake data: the same ones the simulator takes. */
export interface DataOptions extends SeededRecords<BaseResource> {
  /** The shard the clinic lives on: its records link to https://api.<shard>.cliniko.com/v1. Default au1. */
  shard?: string
}

/** The records of a list, in its order. Pure: same input, same answer. */
export function selectItems (resource: ClinikoResource, query: ListQuery, options: DataOptions = {}): SimItem[] {
  const { base, state } = sourceOf(resource)
  const fields = FIELDS[base]
  const api = shardBaseUrl(options.shard ?? 'au1')
  const shown = new Set<ItemState>([state])
  if (state === 'active') {
    for (const [hidden, field] of Object.entries(LIFTED_BY)) if (query.filters.some(f => f.field === field)) shown.add(hidden as ItemState)
  }
  const kept: Array<{ item: SimItem, index: number }> = []
  const count = recordCountOf(base, options.recordCount, DEFAULT_RECORD_COUNTS)
  for (let i = 0; i < count; i++) {
    const item = itemAt(base, options.seed ?? 1, i, api)
    if (shown.has(item.state) && query.filters.every(f => matches(item, fields[f.field] ?? 'string', f))) kept.push({ item, index: i })
  }
  kept.sort((x, y) => {
    for (const { field, desc } of query.sort) {
      const c = orderOf(fields[field] ?? 'string', valueOf(x.item, field), valueOf(y.item, field))
      if (c !== 0) return desc ? -c : c
    }
    return x.index - y.index // ties keep id order, so every list is fully determined
  })
  return kept.map(k => k.item)
}

/**
 * Every record's JSON text a job with these params must end with, in order, computed without HTTP: the bytes
 * the simulator serves. `params` are the job's (`q`, `sort`, `order`; `per_page` does not change the result).
 */
export function expectedRecords (resource: ClinikoResource, params: {
  q?: string[],
  sort?: string,
  order?: string,
  per_page?: number,
}, options: DataOptions = {}): string[] {
  const query: Record<string, unknown> = {}
  if (params.q !== undefined) query['q[]'] = params.q
  if (params.sort !== undefined) query.sort = params.sort
  if (params.order !== undefined) query.order = params.order
  const read = readPageQuery(resource, query)
  if ('errors' in read) throw new Error(`the simulator would refuse these params: ${Object.keys(read.errors).join(', ')}`)
  return listTexts(resource, read.request, options)
}

/** The JSON text of a list's records, in its order: what its pages are cut from. */
function listTexts (resource: ClinikoResource, query: ListQuery, options: DataOptions): string[] {
  return selectItems(resource, query, options).map(item => recordText(item.record))
}

/** A list's records as text, remembered for the next pages; page and per_page do not change which records. */
export function listCache (options: DataOptions): (resource: ClinikoResource, query: ListQuery) => string[] {
  return recentlyComputed(
    (resource: ClinikoResource, query: ListQuery) => listTexts(resource, query, options),
    (resource, query) => JSON.stringify([resource, query.filters, query.sort])
  )
}
