/**
 * Receipts: Clinia's per-operation outcome, stored as the job's result records. Each is kept as Clinia's own
 * JSON text with one field spliced in, `"index": <0-based position in the job's operations>`, so that receipts
 * from several chunks (and the gateway's own NOT_SENT receipts) read as one list. Clinia's objects are never
 * re-serialised: a JSON round trip would change their text (escapes, number forms, key order).
 */
import { extractArray } from '../json-records.js'
import { UpstreamError } from '../../domain/errors.js'
import { targetOf, type CliniaOperation, type CliniaResource } from './params.js'
import { isObject } from '../../lib/values.js'

/** A chunk's receipts as Clinia wrote them, with the status of each, in operation order. */
export interface ChunkReceipts {
  texts: string[]
  statuses: string[]
}

/** How many of a chunk's operations Clinia applied, and how many it did not (failed or cancelled). */
export interface Tally { succeeded: number, failed: number }

/**
 * The `receipts` array of a Clinia answer (a task status or a REJECTED submit), checked against the chunk:
 * exactly one object receipt with a string `status` per operation sent. `body` is the parsed `text`.
 */
export function readReceipts (text: string, body: Record<string, unknown>, expected: number, what: string, httpStatus: number): ChunkReceipts {
  const invalid = (why: string): UpstreamError => new UpstreamError('invalid_upstream_response', `${what}: ${why}`, httpStatus)
  if (!Array.isArray(body.receipts)) throw invalid('no "receipts" array')
  if (body.receipts.length !== expected) {
    throw invalid(`${body.receipts.length} receipts for ${expected} operations; receipts cannot be matched to operations`)
  }
  const statuses = body.receipts.map((r: unknown, i) => {
    if (!isObject(r) || typeof r.status !== 'string') throw invalid(`receipt ${i} has no "status"`)
    // Our index goes first and JSON readers keep the last of two equal keys: Clinia's own index (say, a
    // position inside the request) would silently win. Refuse rather than serve misleading positions.
    if (Object.hasOwn(r, 'index')) throw invalid('receipts carry their own "index" field, which the gateway\'s would be confused with')
    return r.status
  })
  return { texts: extractArray(text, 'receipts'), statuses }
}

/** `{"index":N,` spliced after the opening brace of one receipt's raw text. */
export function withIndex (raw: string, index: number): string {
  if (raw.charCodeAt(0) !== 0x7b) throw new UpstreamError('invalid_upstream_response', `Clinia receipt for operation ${index} is not a JSON object`)
  const empty = /^\{\s*\}$/.test(raw)
  return `{"index":${index}${empty ? '' : ','}${raw.slice(1)}`
}

/** SUCCESS is applied; FAILURE and CANCELLED (and anything else terminal) are not. */
export function tally (statuses: readonly string[]): Tally {
  const succeeded = statuses.filter(s => s === 'SUCCESS').length
  return { succeeded, failed: statuses.length - succeeded }
}

/** A chunk's receipts as result records: each with its operation's position in the whole job. */
export function indexed (receipts: ChunkReceipts, firstIndex: number): string[] {
  return receipts.texts.map((raw, i) => withIndex(raw, firstIndex + i))
}

/**
 * The receipt the gateway writes for an operation it never sent, because an earlier chunk was REJECTED:
 *
 * ```json
 * {"index":7,"status":"NOT_SENT","action":"CREATE","targetType":"RESOURCE","type":"provider","id":"p-7"}
 * {"index":8,"status":"NOT_SENT","action":"UPSERT","targetType":"RELATIONSHIP","type":"worksAt",
 *  "from":{"type":"provider","id":"p-7"},"to":{"type":"office","id":"o-1"}}
 * ```
 *
 * `index`, `status`, `action`, `targetType` and `type` are always present; `id` when the operation names one
 * (a CREATE may leave it to Clinia); `from` and `to` for relationship operations that name their ends.
 * Only identifiers are copied, never `data`, `contained` or `meta`.
 */
export function notSentReceipt (op: CliniaOperation, index: number, resource: CliniaResource): string {
  const target = targetOf(op)
  const receipt: Record<string, unknown> = {
    index,
    status: 'NOT_SENT',
    action: op.action,
    targetType: resource === 'resources' ? 'RESOURCE' : 'RELATIONSHIP',
    type: target.type,
  }
  if (target.id !== undefined) receipt.id = target.id
  // Rebuilt rather than copied: the stored payload (jsonb) comes back with its keys reordered.
  for (const end of ['from', 'to'] as const) {
    const ref = target[end] as { type: string, id: string } | undefined
    if (ref !== undefined) receipt[end] = { type: ref.type, id: ref.id }
  }
  return JSON.stringify(receipt)
}
