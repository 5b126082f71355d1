/**
 * The completion manifest of a FHIR bulk export, checked and reduced to what the job needs: the files to read, in
 * the order the job stores them (every `output` entry in manifest order, then `deleted`, then `error`). Pure.
 */
import { UpstreamError } from '../../domain/errors.js'
import { RESOURCE_TYPE } from './params.js'

/** Which array of the manifest a file was listed in. */
export type ManifestArray = 'output' | 'deleted' | 'error'

/** One file to read. */
export interface ManifestFile {
  array: ManifestArray
  type: string
  url: string
  /** The manifest's `count`, when it gave one. */
  count: number | null
}

/** What the job keeps of a manifest (in its checkpoint, so a resumed job reads the same files). */
export interface Manifest {
  transactionTime: string
  requiresAccessToken: boolean
  files: ManifestFile[]
}

const invalid = (why: string, status: number): UpstreamError =>
  new UpstreamError('invalid_upstream_response', `FHIR export manifest ${why}`, status)

function entries (body: Record<string, unknown>, array: ManifestArray, status: number): ManifestFile[] {
  const list = body[array]
  // `deleted` and `error` may be left out when empty; `output` is required.
  if (list === undefined && array !== 'output') return []
  if (!Array.isArray(list)) throw invalid(`has no "${array}" array`, status)
  return list.map((entry: unknown, i) => {
    const e = entry as { type?: unknown, url?: unknown, count?: unknown } | null
    if (typeof e?.type !== 'string' || !RESOURCE_TYPE.test(e.type)) throw invalid(`${array}[${i}] has no resource "type"`, status)
    let url: URL
    try {
      url = new URL(String(e.url))
    } catch {
      throw invalid(`${array}[${i}] has no absolute "url"`, status)
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid(`${array}[${i}] has a "url" that is not http(s)`, status)
    const count = typeof e.count === 'number' && Number.isSafeInteger(e.count) && e.count >= 0 ? e.count : null
    return { array, type: e.type, url: url.toString(), count }
  })
}

/** The manifest in a status 200's body; `invalid_upstream_response` when it is not one. */
export function parseManifest (text: string, status = 200): Manifest {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw invalid('is not JSON', status)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('is not a JSON object', status)
  const body = value as Record<string, unknown>
  if (typeof body.transactionTime !== 'string' || !Number.isFinite(Date.parse(body.transactionTime))) throw invalid('has no "transactionTime"', status)
  if (typeof body.requiresAccessToken !== 'boolean') throw invalid('has no boolean "requiresAccessToken"', status)
  return {
    transactionTime: body.transactionTime,
    requiresAccessToken: body.requiresAccessToken,
    files: [...entries(body, 'output', status), ...entries(body, 'deleted', status), ...entries(body, 'error', status)],
  }
}

/** Files per array, for the job's upstreamInfo. */
export function fileCounts (m: Manifest): Record<ManifestArray, number> {
  const counts = { output: 0, deleted: 0, error: 0 }
  for (const f of m.files) counts[f.array]++
  return counts
}

/**
 * Whether a new export (after a restart) lists the same files, by array and type in the same order, as the one
 * whose first `upTo` files the job already stored: only then may it go on from where it was.
 */
export function sameLayout (before: Manifest, after: Manifest, upTo: number): boolean {
  if (after.files.length < upTo) return false
  return before.files.slice(0, upTo + 1).every((f, i) => {
    const g = after.files[i]
    return g !== undefined && g.array === f.array && g.type === f.type && (f.count === null || g.count === null || f.count === g.count)
  })
}
