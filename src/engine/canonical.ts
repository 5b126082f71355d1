import { createHash } from 'node:crypto'

/** JSON with object keys sorted at every depth: equal values give equal text whatever the key order. */
export function canonicalJson (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    const sorted: Record<string, unknown> = {}
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k]
    return sorted
  })
}

/** The identity of a request for dedupe and idempotency: sha256 of its canonical JSON. */
export function requestHash (request: { upstream: string, resource: string, params: unknown, payload: unknown, callback?: unknown }): string {
  return createHash('sha256').update(canonicalJson(request)).digest('hex')
}
