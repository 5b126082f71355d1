/**
 * The simulator's terminology: sources with versions, and concepts and mappings that are pure functions of
 * (seed, source, index), so nothing is stored, a 20 000-record export costs no memory, and tests compute the
 * exact records a job must return with the `expected…` helpers (the same code that writes the answers).
 *
 * Export records are written the way oclapi2 writes export.json (Python's json.dumps: `", "` and `": "`,
 * some strings \u-escaped, others raw UTF-8); list records the way DRF renders them (compact, raw UTF-8).
 */
import { mulberry32, pick, type Rand } from '../../simulator-kit/seeded-random.js'

/** One version of a simulated source. */
export interface SimVersion {
  id: string
  released: boolean
  /** ISO datetime; versions are listed newest first by it. */
  createdOn: string
}

/** A simulated OCL source. */
export interface SimSource {
  ownerType: 'orgs' | 'users'
  owner: string
  source: string
  /** Anonymous requests may read it, as OCL's public sources. */
  public: boolean
  versions: SimVersion[]
  /** Concepts and mappings of HEAD; a version n places below the newest holds 40n fewer / 25n fewer. */
  concepts: number
  mappings: number
}

/** Options that shape the data: the same ones the simulator takes. */
export interface SimDataOptions {
  seed?: number
  sources?: SimSource[]
  /** A broken export for tests: the record at this position (0-based, concepts then mappings) has no `type`. */
  untypedRecord?: number
}

export const DEFAULT_SOURCES: readonly SimSource[] = [
  {
    ownerType: 'orgs',
    owner: 'CIEL',
    source: 'CIEL',
    public: true,
    concepts: 2300,
    mappings: 1700,
    versions: [
      { id: 'v2024-03-01-draft', released: false, createdOn: '2024-03-01T09:00:00Z' },
      { id: 'v2024-01-15', released: true, createdOn: '2024-01-15T12:00:00Z' },
      { id: 'v2023-10-02', released: true, createdOn: '2023-10-02T12:00:00Z' },
    ],
  },
  {
    ownerType: 'users',
    owner: 'jdoe',
    source: 'ClinicTerms',
    public: false,
    concepts: 60,
    mappings: 30,
    versions: [{ id: 'v1.0', released: true, createdOn: '2024-05-20T08:30:00Z' }],
  },
  {
    ownerType: 'orgs',
    owner: 'MSF',
    source: 'Drafts',
    public: true,
    concepts: 10,
    mappings: 0,
    versions: [{ id: 'draft-1', released: false, createdOn: '2024-02-02T10:00:00Z' }],
  },
]

function hash (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** A string that json.dumps writes with ensure_ascii (every non-ASCII UTF-16 unit as \uXXXX). */
class Ascii { constructor (readonly value: string) {} }

/** Python json.dumps's default layout. */
function py (v: unknown): string {
  if (v instanceof Ascii) return JSON.stringify(v.value).replace(/[\u007f-\uffff]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  if (Array.isArray(v)) return `[${v.map(py).join(', ')}]`
  if (v !== null && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${py(x)}`).join(', ')}}`
  return JSON.stringify(v)
}

const EN = ['Malaria', 'Fever', 'Cough', 'Anaemia', 'Hypertension', 'Diabetes mellitus', 'Tuberculosis', 'Pneumonia',
  'Haemoglobin', 'Weight', 'Height', 'Headache', 'Diarrhoea', 'Asthma', 'HIV test', 'CD4 count', 'Amoxicillin',
  'Paracetamol', 'Chest X-ray', 'Pregnancy']
const FR = ['Paludisme', 'Fièvre', 'Toux', 'Anémie', 'Hypertension artérielle', 'Diabète sucré', 'Tuberculose',
  'Pneumonie', 'Hémoglobine', 'Poids', 'Taille', 'Céphalée', 'Diarrhée', 'Asthme', 'Test VIH', 'Numération CD4',
  'Amoxicilline', 'Paracétamol', 'Radiographie thoracique', 'Grossesse']
const QUALIFIERS = ['', ', acute', ', chronic', ', severe', ' (finding)', ', unspecified', ' — suspected', ' 𝛼-variant']
const CLASSES = ['Diagnosis', 'Finding', 'Test', 'Drug', 'Procedure', 'Question', 'Symptom', 'Misc']
const MAP_TYPES = ['SAME-AS', 'NARROWER-THAN', 'BROADER-THAN', 'Q-AND-A', 'CONCEPT-SET']
const EXTERNAL = [['SNOMED-CT', 'IHTSDO'], ['ICD-10-WHO', 'WHO'], ['LOINC', 'Regenstrief']] as const
const START = Date.UTC(2019, 0, 1)
const SPAN = Date.UTC(2025, 0, 31) - START

/** DRF's datetime form, with microseconds. */
const stamp = (ms: number, micros: number): string => `${new Date(ms).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`
const ownerUrl = (s: SimSource): string => `/${s.ownerType}/${s.owner}/`
const sourceUrl = (s: SimSource): string => `${ownerUrl(s)}sources/${s.source}/`
const ownerTypeName = (s: SimSource): string => (s.ownerType === 'orgs' ? 'Organization' : 'User')

/** What a record is, before it is written in one form or the other. */
interface Facts { index: number, retired: boolean, updatedMs: number, updatedOn: string, createdOn: string, r: Rand }

function factsOf (seed: number, s: SimSource, kind: 'concept' | 'mapping', index: number): Facts {
  const r = mulberry32(hash(`${seed}|${s.ownerType}/${s.owner}/${s.source}|${kind}|${index}`))
  const updatedMs = START + Math.floor(r() * SPAN)
  const createdMs = updatedMs - Math.floor(r() * 400) * 86_400_000
  return { index, retired: r() < 0.07, updatedMs, updatedOn: stamp(updatedMs, Math.floor(r() * 1000)), createdOn: stamp(createdMs, 0), r }
}

const conceptId = (index: number): string => String(1000 + index)

function conceptRecord (f: Facts, s: SimSource, form: 'export' | 'list'): Record<string, unknown> {
  const term = Math.floor(f.r() * EN.length)
  const display = `${EN[term] as string}${pick(f.r, QUALIFIERS)}`
  const id = conceptId(f.index)
  const url = `${sourceUrl(s)}concepts/${id}/`
  const version = String(500_000 + f.index * 3)
  const conceptClass = pick(f.r, CLASSES)
  const base = {
    type: 'Concept',
    uuid: String(9_000_000 + f.index),
    id,
    external_id: f.r() < 0.8 ? `${id}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`.slice(0, 36) : null,
    concept_class: conceptClass,
    datatype: conceptClass === 'Test' ? 'Numeric' : pick(f.r, ['N/A', 'Coded', 'Text', 'Boolean']),
    url,
    version_url: `${url}${version}/`,
    retired: f.retired,
    source: s.source,
    owner: s.owner,
    owner_type: ownerTypeName(s),
    owner_url: ownerUrl(s),
    display_name: display,
    display_locale: 'en',
    version,
  }
  if (form === 'list') return { ...base, update_comment: null, updated_on: f.updatedOn }
  return {
    ...base,
    names: [
      { type: 'ConceptName', uuid: String(20_000_000 + f.index * 2), name: display, external_id: null, locale: 'en', locale_preferred: true, name_type: 'FULLY_SPECIFIED' },
      { type: 'ConceptName', uuid: String(20_000_001 + f.index * 2), name: FR[term] as string, external_id: null, locale: 'fr', locale_preferred: true, name_type: 'FULLY_SPECIFIED' },
    ],
    descriptions: [{ type: 'ConceptDescription', uuid: String(30_000_000 + f.index), description: new Ascii(`« ${FR[term] as string} » noted as "${display}" in C:\\OCL\\${id}`), locale: 'en', locale_preferred: false, description_type: 'Definition' }],
    extras: f.r() < 0.3 ? { 'IMO ProblemIT': String(100_000 + f.index), hi_absolute: null } : {},
    created_on: f.createdOn,
    updated_on: f.updatedOn,
    version_created_on: f.updatedOn,
    version_created_by: 'ocladmin',
    is_latest_version: true,
    update_comment: null,
    checksums: { standard: hash(`${id}|${display}`).toString(16).padStart(8, '0') },
  }
}

function mappingRecord (f: Facts, s: SimSource, form: 'export' | 'list'): Record<string, unknown> {
  const from = conceptId(Math.floor(f.r() * Math.max(1, s.concepts)))
  const external = f.r() < 0.6 ? pick(f.r, EXTERNAL) : null
  const toCode = external === null ? conceptId(Math.floor(f.r() * Math.max(1, s.concepts))) : String(Math.floor(f.r() * 90_000_000) + 10_000)
  const toSource = external === null ? sourceUrl(s) : `/orgs/${external[1]}/sources/${external[0]}/`
  const id = String(700_000 + f.index)
  const url = `${sourceUrl(s)}mappings/${id}/`
  const version = String(800_000 + f.index * 2)
  const base = {
    type: 'Mapping',
    uuid: String(40_000_000 + f.index),
    id,
    external_id: null,
    retired: f.retired,
    map_type: pick(f.r, MAP_TYPES),
    source: s.source,
    owner: s.owner,
    owner_type: ownerTypeName(s),
    from_concept_code: from,
    from_concept_name: null,
    from_concept_url: `${sourceUrl(s)}concepts/${from}/`,
    from_source_url: sourceUrl(s),
    to_concept_code: toCode,
    to_concept_name: null,
    to_concept_url: external === null ? `${toSource}concepts/${toCode}/` : null,
    to_source_url: toSource,
    url,
    version,
    version_url: `${url}${version}/`,
  }
  if (form === 'list') return { ...base, updated_on: f.updatedOn }
  return { ...base, extras: {}, created_on: f.createdOn, updated_on: f.updatedOn, version_created_on: f.updatedOn, version_created_by: 'ocladmin', is_latest_version: true }
}

/** The source at `ownerType/owner/source`, if the simulator has it. */
export function findSource (options: SimDataOptions, ownerType: string, owner: string, source: string): SimSource | undefined {
  return (options.sources ?? DEFAULT_SOURCES).find(s => s.ownerType === ownerType && s.owner === owner && s.source === source)
}

/** A source's versions, newest first (OCL's order). */
export function versionsOf (s: SimSource): SimVersion[] {
  return [...s.versions].sort((a, b) => (a.createdOn < b.createdOn ? 1 : a.createdOn > b.createdOn ? -1 : 0))
}

/** How many concepts and mappings a version holds. */
function sizeOf (s: SimSource, version: string): { concepts: number, mappings: number } {
  const rank = Math.max(0, versionsOf(s).findIndex(v => v.id === version))
  return { concepts: Math.max(0, s.concepts - 40 * rank), mappings: Math.max(0, s.mappings - 25 * rank) }
}

/** What the export GET says in its Last-Updated header: a naive datetime in OCL's zone, as oclapi2 sends it. */
export function lastUpdatedOf (s: SimSource, version: string): string {
  const v = s.versions.find(x => x.id === version)
  return new Date(Date.parse(v?.createdOn ?? '2024-01-01T00:00:00Z') - 2 * 3_600_000).toISOString().slice(0, 19)
}

/** The version's own fields, as the first part of export.json (and its versions-list entry). */
export function versionRecord (s: SimSource, v: SimVersion): Record<string, unknown> {
  return {
    type: 'Source Version',
    id: v.id,
    short_code: s.source,
    name: s.source,
    full_name: `${s.source} dictionary`,
    source_type: 'Interface Terminology',
    public_access: s.public ? 'View' : 'None',
    default_locale: 'en',
    supported_locales: ['en', 'fr'],
    released: v.released,
    retired: false,
    owner: s.owner,
    owner_type: ownerTypeName(s),
    owner_url: ownerUrl(s),
    url: `${sourceUrl(s)}${v.id}/`,
    version_url: `${sourceUrl(s)}${v.id}/`,
    created_on: v.createdOn,
  }
}

/** export.json of a version, in pieces of ~64 KB: the text the simulator zips. */
export function * exportJsonChunks (options: SimDataOptions, s: SimSource, v: SimVersion): Generator<string> {
  const seed = options.seed ?? 1
  const size = sizeOf(s, v.id)
  // Nested "concepts"/"mappings" keys, as free-form extras may hold: only the top-level arrays are records.
  const head = py({ ...versionRecord(s, v), extras: { concepts: 'see below', mappings: [{ type: 'Mapping' }] } })
  let out = `${head.slice(0, -1)}, "concepts": [`
  for (const [kind, total] of [['concept', size.concepts], ['mapping', size.mappings]] as const) {
    if (kind === 'mapping') out += '], "mappings": ['
    for (let i = 0; i < total; i++) {
      const f = factsOf(seed, s, kind, i)
      const record = kind === 'concept' ? conceptRecord(f, s, 'export') : mappingRecord(f, s, 'export')
      if (options.untypedRecord === (kind === 'concept' ? i : size.concepts + i)) delete record.type
      out += (i === 0 ? '' : ', ') + py(record)
      if (out.length >= 65_536) { yield out; out = '' }
    }
  }
  yield `${out}]}`
}

/** Every record an export job of this version must store, in order: concepts, then mappings. */
export function expectedExport (options: SimDataOptions, t: { ownerType: string, owner: string, source: string, version: string }): string[] {
  const s = findSource(options, t.ownerType, t.owner, t.source)
  if (s === undefined) throw new Error(`the simulator has no source ${t.ownerType}/${t.owner}/${t.source}`)
  const seed = options.seed ?? 1
  const size = sizeOf(s, t.version)
  return [
    ...Array.from({ length: size.concepts }, (_, i) => py(conceptRecord(factsOf(seed, s, 'concept', i), s, 'export'))),
    ...Array.from({ length: size.mappings }, (_, i) => py(mappingRecord(factsOf(seed, s, 'mapping', i), s, 'export'))),
  ]
}

/** The newest released version of a source, as `version: latest` must resolve. */
export function expectedLatestVersion (options: SimDataOptions, ownerType: string, owner: string, source: string): string | null {
  const s = findSource(options, ownerType, owner, source)
  return s === undefined ? null : versionsOf(s).find(v => v.released)?.id ?? null
}

/** A list endpoint's records (HEAD), filtered and in OCL's order: newest update first. */
export function listRecords (options: SimDataOptions, s: SimSource, list: 'concepts' | 'mappings', filter: { sinceMs: number | null, includeRetired: boolean }): string[] {
  const seed = options.seed ?? 1
  const kind = list === 'concepts' ? 'concept' : 'mapping'
  const kept: Facts[] = []
  for (let i = 0; i < (list === 'concepts' ? s.concepts : s.mappings); i++) {
    const f = factsOf(seed, s, kind, i)
    if ((filter.includeRetired || !f.retired) && (filter.sinceMs === null || f.updatedMs >= filter.sinceMs)) kept.push(f)
  }
  kept.sort((a, b) => b.updatedMs - a.updatedMs || a.index - b.index)
  // Facts are consumed as records are written: draw them again from a fresh PRNG per record.
  return kept.map(f => JSON.stringify(list === 'concepts'
    ? conceptRecord(factsOf(seed, s, kind, f.index), s, 'list')
    : mappingRecord(factsOf(seed, s, kind, f.index), s, 'list')))
}

/** Every record a changes job must store: the concept list, then the mapping list. */
export function expectedChanges (options: SimDataOptions, t: {
  ownerType: string,
  owner: string,
  source: string,
  sinceMs: number,
  includeRetired: boolean,
}): string[] {
  const s = findSource(options, t.ownerType, t.owner, t.source)
  if (s === undefined) throw new Error(`the simulator has no source ${t.ownerType}/${t.owner}/${t.source}`)
  const filter = { sinceMs: t.sinceMs, includeRetired: t.includeRetired }
  return [...listRecords(options, s, 'concepts', filter), ...listRecords(options, s, 'mappings', filter)]
}
