/**
 * Everything the gateway computes from a `POST /jobs` body before the job service sees it: the JSON parse
 * (refusing prototype poisoning, as Fastify's own parser does), the validation against the body schema (with
 * the same issues, pointers and unstorable-string check as every other route), the request's identity hash, and
 * the write payload as JSON text ready for PostgreSQL. For a 100 000-operation Clinia body this is seconds of
 * CPU, so large bodies run it in a worker thread (job-body-worker.ts) and small ones inline; either way the
 * result is plain data, cheap to pass between threads.
 */
import secureJson from 'secure-json-parse'
import type { z } from 'zod'
import { requestHash } from '../engine/canonical.js'
import type { Registry } from '../upstreams/registry.js'
import { jobRequestSchema } from './job-request.js'
import { validatorCompiler, type ValidationIssue } from './validation.js'

/** A body ready for the job service. */
export interface PreparedJob {
  upstream: string
  resource: string
  params: Record<string, unknown>
  /**
   * The write payload (`{"operations":[…]}`) in jsonb's binary wire format (a version byte, 1, then the JSON
   * text), null for read jobs: bytes, so that it moves from the worker thread without a copy and goes to
   * PostgreSQL without being encoded again on the event loop.
   */
  payloadJsonb: Uint8Array | null
  /** sha256 of the canonical request (canonical.ts): dedupe and idempotency. */
  hash: string
  /** Where to POST the job's view when it ends (`callback.url`), or null. */
  callbackUrl: string | null
}

export type PrepareResult =
  | { ok: true, job: PreparedJob }
  | { ok: false, malformed: string }
  | { ok: false, issues: ValidationIssue[] }

type Validate = (data: unknown) => { value?: unknown, error?: unknown }
const validators = new WeakMap<Registry, Validate>()

/** The route's own validator over the route's own schema: built once per thread and registry, on first use. */
function validator (registry: Registry): Validate {
  let validate = validators.get(registry)
  if (validate === undefined) {
    validate = validatorCompiler({ schema: jobRequestSchema(registry.upstreams) as z.ZodType, httpPart: 'body', method: 'POST', url: '/jobs' }) as unknown as Validate
    validators.set(registry, validate)
  }
  return validate
}

/** jsonb's binary input format: version 1, then the text. */
function jsonb (text: string): Uint8Array {
  const bytes = Buffer.allocUnsafeSlow(1 + Buffer.byteLength(text))
  bytes[0] = 1
  bytes.write(text, 1)
  return bytes
}

/**
 * Parses, validates (against the upstreams of `registry`) and hashes a body (its UTF-8 bytes, in parts). Never
 * throws for anything a client can send.
 */
export function prepareJobBody (parts: readonly Uint8Array[], registry: Registry): PrepareResult {
  const bytes = Buffer.concat(parts)
  if (bytes.length === 0) return { ok: false, malformed: 'The body is empty: POST /jobs takes a JSON object.' }
  let data: unknown
  try {
    data = secureJson.parse(bytes.toString('utf8'), undefined, { protoAction: 'error', constructorAction: 'error' })
  } catch (err) {
    // Not V8's message, which quotes the body (it may hold patient data).
    const detail = /prototype/i.test((err as Error).message)
      ? 'The body has a forbidden key (__proto__, or constructor.prototype).'
      : 'The body is not valid JSON.'
    return { ok: false, malformed: detail }
  }
  const checked = validator(registry)(data)
  if (checked.error !== undefined) return { ok: false, issues: checked.error as ValidationIssue[] }
  const { upstream, resource, params, callback, ...rest } = checked.value as {
    upstream: string, resource: string, params: Record<string, unknown>, callback?: { url: string }
  }
  const payload = Object.keys(rest).length > 0 ? rest : null
  return {
    ok: true,
    job: {
      upstream,
      resource,
      params,
      payloadJsonb: payload === null ? null : jsonb(JSON.stringify(payload)),
      // A callback makes another request of the same read: a twin in flight without it (or with another URL)
      // would never call this one's URL. Without one the hash is what it always was.
      hash: requestHash({ upstream, resource, params, payload, ...(callback !== undefined ? { callback } : {}) }),
      callbackUrl: callback?.url ?? null,
    },
  }
}
