/**
 * What one export holds: the files a kick-off's params select from the simulator's data, in manifest order
 * (`output` by type name, split every `pageSize` resources; then `deleted`; then `error`), and the records a gateway
 * job must end with for them. Pure.
 */
import { FHIR_ID, FHIR_INSTANT, typeList } from '../params.js'
import {
  deletedLine, failedFileLine, isDeleted, PATIENT_TYPES, resourcesOf, SIM_GROUPS, SIM_TYPES,
  type SimDataOptions, type SimResource, type SimType,
} from './data.js'

/** A kick-off as the simulator reads it. */
export interface ExportRequest {
  level: 'system' | 'patient' | 'group'
  groupId?: string | undefined
  _type?: string | undefined
  _since?: string | undefined
  _typeFilter?: string | undefined
}

/** How the data is cut into files, and which quirks shape the manifest. */
export interface ExportShape extends SimDataOptions {
  /** Resources per file (the SMART server's `page`); default 10 000. */
  pageSize?: number
  /** With `_since`: about this % of each type's resources are listed in `deleted` instead of `output`. */
  deletedPercent?: number
  /** The SMART server's some_file_generation_failed: two of every three output files go to `error` instead. */
  someFilesFail?: boolean
}

/** One file of the manifest, with its lines. */
export interface PlannedFile { array: 'output' | 'deleted' | 'error', type: string, lines: string[] }

type Filter = { type: string, pairs: Array<[string, string]> }

/** `Type?key=value&key=value`, comma-separated; null when one is not of that form. */
function parseTypeFilter (value: string): Filter[] | null {
  const out: Filter[] = []
  for (const part of value.split(',')) {
    const m = /^([A-Z][A-Za-z]+)\?(.+)$/.exec(part.trim())
    if (m === null) return null
    const pairs = (m[2] as string).split('&').map(kv => kv.split('=')) as Array<[string, string]>
    if (pairs.some(p => p.length !== 2 || p[0] === '' || p[1] === '')) return null
    try {
      out.push({ type: m[1] as string, pairs: pairs.map(([k, v]) => [k, decodeURIComponent(v)]) })
    } catch {
      return null // a bad % escape: the request's fault, a 400
    }
  }
  return out
}

const chunks = <T>(list: T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size))

/** The export's files, or the 400's diagnostics when the request cannot be served. */
export function planExport (o: ExportShape, req: ExportRequest, now: number = Date.now()): PlannedFile[] | { error: string } {
  const asked = req._type === undefined ? [...SIM_TYPES] : typeList(req._type)
  if (asked === null) return { error: 'The "_type" parameter is not a list of resource types' }
  const unknown = asked.find(t => !(SIM_TYPES as readonly string[]).includes(t))
  if (unknown !== undefined) return { error: `The requested resource type "${unknown}" is not available on this server` }
  let sinceMs: number | null = null
  if (req._since !== undefined) {
    sinceMs = FHIR_INSTANT.test(req._since) ? Date.parse(req._since) : NaN
    if (!Number.isFinite(sinceMs)) return { error: `Invalid dateTime "${req._since}"` }
    if (sinceMs > now) return { error: `Invalid dateTime "${req._since}. Future dates are not accepted!"` }
  }
  const filters = req._typeFilter === undefined ? [] : parseTypeFilter(req._typeFilter)
  if (filters === null) return { error: 'The "_typeFilter" parameter is not of the form Type?param=value' }
  if (req.level === 'group' && (req.groupId === undefined || !FHIR_ID.test(req.groupId))) return { error: 'Invalid group id' }
  // An unknown group exports nothing (the SMART server's answer), not a 404.
  const member = req.level === 'group' ? SIM_GROUPS[req.groupId as string] ?? (() => false) : () => true
  const types = (SIM_TYPES as readonly SimType[]).filter(t => asked.includes(t) && (req.level === 'system' || PATIENT_TYPES.includes(t)))
  const keep = (r: SimResource): boolean => {
    if (r.patient !== null && !member(r.patient)) return false
    if (r.patient === null && req.level !== 'system') return false
    if (sinceMs !== null && Date.parse(r.lastUpdated) < sinceMs) return false
    const own = filters.filter(f => f.type === r.type)
    return own.length === 0 || own.some(f => f.pairs.every(([k, v]) => r.fields[k] === v))
  }
  const size = Math.max(1, o.pageSize ?? 10_000)
  const output: PlannedFile[] = []
  const deleted: PlannedFile[] = []
  for (const type of types) {
    const selected = resourcesOf(o, type).filter(keep)
    const gone = sinceMs === null ? [] : selected.filter(r => isDeleted(o, r, o.deletedPercent ?? 0))
    const kept = selected.filter(r => !gone.includes(r))
    for (const c of chunks(kept, size)) output.push({ array: 'output', type, lines: c.map(r => r.text) })
    for (const c of chunks(gone, size)) deleted.push({ array: 'deleted', type: 'Bundle', lines: c.map(deletedLine) })
  }
  if (!o.someFilesFail) return [...output, ...deleted]
  const failed = output.filter((_, i) => i % 3 !== 0)
  return [
    ...output.filter((_, i) => i % 3 === 0),
    ...deleted,
    ...failed.map(f => ({ array: 'error' as const, type: 'OperationOutcome', lines: [failedFileLine(f.type)] })),
  ]
}

/**
 * The records a gateway job must end with for this export, as docs/API.md specifies them: output lines as they are,
 * then `deleted` and `error` lines wrapped in `{"manifestArray","type","resource"}`. Written out here rather than
 * taken from the adapter, so the tests check the adapter against the documented form.
 */
export function expectedRecords (o: ExportShape, req: ExportRequest, now?: number): string[] {
  const files = planExport(o, req, now)
  if (!Array.isArray(files)) throw new Error(`the simulator refuses this export: ${files.error}`)
  return files.flatMap(f => f.lines.map(line =>
    f.array === 'output' ? line : `{"manifestArray":${JSON.stringify(f.array)},"type":${JSON.stringify(f.type)},"resource":${line}}`))
}
