/**
 * What the peer tests share: the SMART server's access-log lines they look for, its own counts and groups, and
 * ways to compare lists of NDJSON lines. The harness test (smart-peer-harness.test.ts) checks each against the
 * server before the gateway tests (fhir-gateway.test.ts) rely on it.
 */
import type { SmartPeer } from '../helpers/smart-peer.js'

export const FHIR_JSON = 'application/fhir+json'

// Access-log lines (Apache combined) the tests look for; the harness checks each against what the peer writes.
/** An accepted system kick-off (GET or POST, any base). */
export const kickOffLine = /"(?:GET|POST) \/\S*fhir\/\$export\S* HTTP\/1\.1" 202 /
/** A status poll answered 500 (the transient_error simulation). */
export const transientLine = /"GET \/fhir\/bulkstatus\/\w+ HTTP\/1\.1" 500 /
/** A download answered 410 (the file_expired simulation). */
export const expiredLine = /"GET \/\S+\/fhir\/bulkfiles\/\S+ HTTP\/1\.1" 410 /
/** An accepted cancel of an export: DELETE of its status URL (group 1: the path). */
export const deleteLine = /"DELETE (\/fhir\/bulkstatus\/\w+) HTTP\/1\.1" 202 /

/** `$get-resource-counts`: rows per resource type. */
export async function resourceCounts (peer: SmartPeer): Promise<Record<string, number>> {
  const res = await fetch(`${peer.baseUrl}/$get-resource-counts`, { headers: { accept: FHIR_JSON } })
  const body = await res.json() as { parameter: Array<{ name: string, valueInteger: number }> }
  return Object.fromEntries(body.parameter.map(p => [p.name, p.valueInteger]))
}

/** The peer's groups (`GET [base]/Group`), with how many patients each holds. */
export async function groups (peer: SmartPeer): Promise<Array<{ id: string, quantity: number }>> {
  const res = await fetch(`${peer.baseUrl}/Group`, { headers: { accept: FHIR_JSON } })
  const bundle = await res.json() as { entry?: Array<{ resource: { id: string, quantity: number } }> }
  return (bundle.entry ?? []).map(e => ({ id: e.resource.id, quantity: e.resource.quantity }))
}

/** `resourceType/id` of each line. */
export const keys = (lines: string[]) => lines.map(line => {
  const r = JSON.parse(line) as { resourceType: string, id: string }
  return `${r.resourceType}/${r.id}`
})

export const countByType = (lines: string[]) => {
  const counts: Record<string, number> = {}
  for (const line of lines) {
    const type = (JSON.parse(line) as { resourceType: string }).resourceType
    counts[type] = (counts[type] ?? 0) + 1
  }
  return counts
}

/**
 * A `_since` that splits the given Observations, read from their data: the server compares `issued` (as UTC,
 * to the second) with `_since`, so the instant one second after the middle distinct value, when the next value is
 * further on, has no observation on its boundary. Returns it and the keys of the Observations from it on.
 */
export function splitSince (lines: string[]): { since: string, after: string[] } {
  const seconds = (issued: string) => Math.floor(Date.parse(issued) / 1000) * 1000
  const observations = lines.map(line => JSON.parse(line) as { id: string, issued?: string })
  const distinct = [...new Set(observations.flatMap(o => o.issued === undefined ? [] : [seconds(o.issued)]))].sort((a, b) => a - b)
  const middle = Math.floor(distinct.length / 2)
  // the gap nearest the middle that leaves at least one whole second between two values
  const order = distinct.map((_, i) => i).sort((a, b) => Math.abs(a - middle) - Math.abs(b - middle))
  const at = order.find(i => i + 1 < distinct.length && distinct[i + 1]! - distinct[i]! >= 2000)
  if (at === undefined) throw new Error('no gap of two seconds between Observation.issued values')
  const pivot = distinct[at]! + 1000
  const after = observations.filter(o => o.issued !== undefined && seconds(o.issued) >= pivot).map(o => `Observation/${o.id}`)
  return { since: new Date(pivot).toISOString().replace('.000Z', 'Z'), after }
}

/** The index of the first line that differs, or -1 when both lists are equal. */
export function firstDifference (got: string[], want: string[]): number {
  const i = got.findIndex((line, index) => line !== want[index])
  if (i !== -1) return i
  return got.length === want.length ? -1 : Math.min(got.length, want.length)
}
