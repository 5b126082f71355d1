/**
 * What a FHIR job saves with each page and hands back on resume: the export it reads (status URL, and its manifest
 * once complete), the file it is in and how many of that file's lines are stored, the next page number, and how often
 * the export was started again. Files before `file` are never read again; the file at `file` is read again from its
 * start and its first `line` lines skipped (they are stored, with this checkpoint, in the same transaction), once
 * their hash matches `lineHash`.
 */
import type { Manifest, ManifestArray } from './manifest.js'

export interface FhirCheckpoint {
  kind: 'fhir'
  /** The current export's status URL; null before a kick-off (or after its export was dropped for a new one). */
  statusUrl: string | null
  /** Epoch ms of that kick-off: the export timeout counts from it. */
  kickedOffAt: number | null
  /** The manifest being read, and the status URL it came from (an older export's, while a new one is awaited). */
  manifest: Manifest | null
  manifestOf: string | null
  /** Index into manifest.files of the file being read, and its lines already stored. */
  file: number
  line: number
  /**
   * SHA-256 (hex) of the file's first `line` lines (each line's bytes and a newline), null at its start: a later
   * download, of the same export or of one started again, must begin with the very lines stored.
   */
  lineHash: string | null
  /** The page the next save uses, from 1. */
  nextPage: number
  /** New kick-offs after an export vanished or its files expired. */
  restarts: number
  /** Records stored, by the manifest array they came from. */
  records: Record<ManifestArray, number>
}

/** A first attempt's checkpoint. */
export function freshCheckpoint (): FhirCheckpoint {
  return {
    kind: 'fhir',
    statusUrl: null,
    kickedOffAt: null,
    manifest: null,
    manifestOf: null,
    file: 0,
    line: 0,
    lineHash: null,
    nextPage: 1,
    restarts: 0,
    records: { output: 0, deleted: 0, error: 0 },
  }
}

const count = (v: unknown): number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0

/** The checkpoint an earlier attempt saved, or null when there is none this adapter wrote. */
export function readCheckpoint (raw: unknown): FhirCheckpoint | null {
  const cp = raw as Partial<FhirCheckpoint> | null
  if (cp?.kind !== 'fhir') return null
  const manifest = cp.manifest !== null && typeof cp.manifest === 'object' && Array.isArray(cp.manifest?.files) ? cp.manifest : null
  const records = (cp.records ?? {}) as Partial<Record<ManifestArray, number>>
  return {
    kind: 'fhir',
    statusUrl: typeof cp.statusUrl === 'string' ? cp.statusUrl : null,
    kickedOffAt: typeof cp.kickedOffAt === 'number' ? cp.kickedOffAt : null,
    manifest,
    manifestOf: manifest !== null && typeof cp.manifestOf === 'string' ? cp.manifestOf : null,
    file: count(cp.file),
    line: count(cp.line),
    // A checkpoint written before the hash existed has none: its lines are skipped unchecked, as they were then.
    lineHash: typeof cp.lineHash === 'string' && /^[0-9a-f]{64}$/.test(cp.lineHash) ? cp.lineHash : null,
    nextPage: Math.max(1, count(cp.nextPage)),
    restarts: count(cp.restarts),
    records: { output: count(records.output), deleted: count(records.deleted), error: count(records.error) },
  }
}
