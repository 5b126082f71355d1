/**
 * The bad-input fuzzer's material: valid job bodies to spoil, JSON pointers into them, strings and numbers that
 * have broken parsers and databases before, and the check that an answer is a proper problem+json.
 */
import fc from 'fast-check'
import { RESOURCE_EXAMPLE } from '../../src/upstreams/clinia/params.js'
import { sandboxPatientId } from '../../src/upstreams/metriport/simulator/index.js'
import { jobRequestExample } from '../../src/api/job-request.js'
import type { Registry } from '../../src/upstreams/registry.js'
import type { TestResponse } from '../helpers/gateway.js'

const PROBLEM = 'application/problem+json'

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
export interface Problem { type: string, title: string, status: number, detail: string, errors?: Array<{ in: string, pointer: string, detail: string }> }

/** Valid bodies with more in them than the examples: every optional field of a kind, and a write. */
const RICH_BASES: Json[] = [
  { upstream: 'drchrono', resource: 'appointments', params: { since: '2024-02-01', page_size: 100, verbose: true } },
  { upstream: 'cliniko', resource: 'patients', params: { q: ['updated_at:>=2024-01-01T00:00:00Z'], per_page: 50 } },
  { upstream: 'ocl', resource: 'changes', params: { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', updatedSince: '2024-06-01', includeRetired: true } },
  { upstream: 'ocl', resource: 'export', params: { ownerType: 'users', owner: 'jdoe', source: 'ClinicTerms', version: 'v1.0' } },
  { upstream: 'metriport', resource: 'document-download-urls', params: { patientId: sandboxPatientId(0), metadata: { batch: 'b1' } } },
  { upstream: 'clinia', resource: 'resources', operations: RESOURCE_EXAMPLE as unknown as Json },
]

/**
 * The valid bodies mutations start from: the worked example of every resource of every upstream the registry
 * holds (each definition declares one), and the richer bodies above of those it holds.
 */
export function basesOf (registry: Registry): Json[] {
  const rich = RICH_BASES.filter(b => registry.find((b as { upstream: string }).upstream) !== undefined)
  const examples = registry.upstreams.flatMap(u => Object.keys(u.resources).map(r => jobRequestExample(u, r) as Json))
  return [...rich, ...examples]
}

/** Every node of a JSON value but the root, as [JSON pointer, value]. */
export function nodes (value: Json, at = ''): Array<[string, Json]> {
  if (value === null || typeof value !== 'object') return []
  const entries: Array<[string, Json]> = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value)
  return entries.flatMap(([k, v]) => {
    const pointer = `${at}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`
    return [[pointer, v] as [string, Json], ...nodes(v, pointer)]
  })
}

const segments = (pointer: string): string[] => pointer === '' ? [] : pointer.slice(1).split('/')
/** Whether pointer `a` is `b` or one of its ancestors. */
export const within = (a: string, b: string): boolean => segments(a).every((s, i) => segments(b)[i] === s)

/** Sets (or, with `undefined`, deletes) the value at a pointer of a copy; own properties even for `__proto__`. */
export function edit (value: Json, pointer: string, next: Json | undefined): Json {
  const copy = structuredClone(value)
  const path = segments(pointer).map(s => s.replace(/~1/g, '/').replace(/~0/g, '~'))
  let parent = copy as Record<string, Json>
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, Json>
  const last = path.at(-1) as string
  if (next === undefined) {
    if (Array.isArray(parent)) parent.splice(Number(last), 1)
    else delete parent[last]
  } else {
    Object.defineProperty(parent, last, { value: next, enumerable: true, writable: true, configurable: true })
  }
  return copy
}

/** Strings that have broken parsers, databases and logs before; `unit: 'binary'` adds NUL and lone surrogates. */
export const nastyString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom('', ' ', '\u0000', 'a\u0000b', '\ud800', '\udfff x', '2024-13-45', '9999-12-31T23:59:59Z', '0000-00-00',
    '-1', '1e309', 'NaN', 'Infinity', 'true', 'null', '__proto__', 'constructor', '../../etc/passwd', '\'; DROP TABLE jobs; --',
    '%00', '%', '\\', '"', '<script>', 'ǅ\u0301\u200d', 'x'.repeat(70_000))
)
export const nastyNumber = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(-1, 0, 0.5, 1e21, 2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER + 2, -0))
export const junk: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null), fc.boolean(), nastyNumber, nastyString,
  fc.array(fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>, { maxLength: 4 }),
  fc.dictionary(nastyString, fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>, { maxKeys: 4 })
)

/** A valid base with one thing wrong: a value replaced, a key added, or one removed, at a known pointer. */
export function mutatedBody (bases: Json[], registry: Registry) {
  const names = [...registry.names, ...registry.upstreams.flatMap(u => Object.keys(u.resources))]
  return fc.record({ base: fc.nat(bases.length - 1), at: fc.nat(), how: fc.constantFrom('replace', 'add', 'remove'), key: nastyString, value: junk })
    .map(({ base, at, how, key, value }) => {
      const body = bases[base] as Json
      const all = nodes(body)
      const [pointer, old] = all[at % all.length] as [string, Json]
      // A discriminator replaced by another valid name moves the error elsewhere: keep names out.
      const discriminator = pointer === '/upstream' || pointer === '/resource'
      const next = discriminator && typeof value === 'string' && names.includes(value) ? `${value}?` : value
      if (how === 'remove') return { body: edit(body, pointer, undefined), pointer, how, added: null }
      if (how === 'add' && old !== null && typeof old === 'object' && !Array.isArray(old) && !(key in old)) {
        const added = `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`
        return { body: edit(body, added, next), pointer, how, added }
      }
      if (how === 'add') return { body: edit(body, '/~0extra', next), pointer: '', how, added: '/~0extra' }
      return { body: edit(body, pointer, next), pointer, how: 'replace', added: null }
    })
}

/** Whether Fastify's JSON parser refuses the text: a `__proto__` key, or a `constructor` key holding a `prototype`. */
export function poisoned (text: string): boolean {
  let found = false
  try {
    JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__' || (key === 'constructor' && typeof value === 'object' && value !== null && 'prototype' in value)) found = true
      return value
    })
  } catch {
    return false
  }
  return found
}

/** A path segment for any string: lone surrogates (which encodeURIComponent refuses) become U+FFFD. */
export const segment = (s: string): string => encodeURIComponent(s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd'))

/** A URL past Node's header limit is refused before routing: 431 (or 414), still a problem. */
export const URL_TOO_LONG = [414, 431]

/** What is wrong with an answer that must be a problem (of one of `statuses`, or any 4xx); null when nothing. */
export function problemIssue (res: TestResponse, text: string, statuses?: number[]): string | null {
  if (res.status >= 500) return `answered ${res.status}: ${text.slice(0, 300)}`
  if (res.status < 400 || (statuses !== undefined && !statuses.includes(res.status))) return `answered ${res.status}, expected ${statuses?.join(' or ') ?? 'a 4xx'}: ${text.slice(0, 200)}`
  if (!(res.headers.get('content-type') ?? '').startsWith(PROBLEM)) return `a ${res.status} with content-type ${res.headers.get('content-type')}`
  let p: Problem
  try {
    p = JSON.parse(text) as Problem
  } catch {
    return `a ${res.status} problem that is not JSON`
  }
  if (p.status !== res.status || typeof p.type !== 'string' || typeof p.title !== 'string' || typeof p.detail !== 'string') {
    return `a ${res.status} whose problem lacks type, title, status or detail: ${text.slice(0, 200)}`
  }
  return null
}
