/**
 * A deliberately plain FHIR Bulk Data client, the oracle of the peer tests: kick-off, poll, manifest, download,
 * written from the specification (Bulk Data Access IG, async request pattern; SMART Backend Services) and sharing
 * nothing with the gateway's `src/upstreams/fhir`, so the two can only agree by both reading the server right.
 * It retries nothing and survives no fault: any answer it does not expect is an error naming it.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT, importJWK, type JWK } from 'jose'

/** What an export asks for. */
export interface PlainExportRequest {
  /** The FHIR base (`…/fhir`, with or without a simulation segment). */
  base: string
  kind: 'system' | 'patient' | 'group'
  /** Required for `group`. */
  groupId?: string
  /** Kick-off query parameters (`_type`, `_since`, `_typeFilter`), sent as given. */
  params?: Record<string, string>
  /** An access token: sent on kick-off and status, and on downloads when the manifest requires it. */
  token?: string
  /** Longest wait between status polls, whatever Retry-After says (default 2000 ms). */
  maxPollMs?: number
  /** Hang detector: give up polling after this long (default 120 000 ms). */
  timeoutMs?: number
}

/** The manifest as the specification describes it. */
export interface PlainManifest {
  transactionTime: string
  request: string
  requiresAccessToken: boolean
  output: Array<{ type: string, url: string, count?: number }>
  deleted?: Array<{ type: string, url: string, count?: number }>
  error: Array<{ type: string, url: string, count?: number }>
}

export interface PlainExportResult {
  /** The Content-Location of the kick-off. */
  statusUrl: string
  manifest: PlainManifest
  /** Every line of every `output` file: files in manifest order, lines in file order. */
  lines: string[]
  /** The lines of the `deleted` files, likewise. */
  deleted: string[]
  /** The lines of the `error` files, likewise. */
  error: string[]
}

/** An answer the plain client did not expect, with its status and body. */
export class PlainClientError extends Error {
  constructor (message: string, readonly status: number, readonly body: string) {
    super(`${message}: ${status} ${body.slice(0, 300)}`)
  }
}

const FHIR_JSON = 'application/fhir+json'

/** The kick-off URL of `req`. */
export function kickOffUrl (req: PlainExportRequest): string {
  const path = req.kind === 'system'
    ? '/$export'
    : req.kind === 'patient' ? '/Patient/$export' : `/Group/${encodeURIComponent(req.groupId ?? '')}/$export`
  const query = new URLSearchParams(req.params ?? {}).toString()
  return `${req.base}${path}${query === '' ? '' : `?${query}`}`
}

/** Kick-off only: the answer, whatever it is (for tests of refusals such as 401). */
export async function kickOff (req: PlainExportRequest): Promise<Response> {
  const headers: Record<string, string> = { accept: FHIR_JSON, prefer: 'respond-async' }
  if (req.token !== undefined) headers.authorization = `Bearer ${req.token}`
  return fetch(kickOffUrl(req), { headers })
}

/**
 * Milliseconds to wait for a Retry-After value: delta-seconds, an HTTP date, or (a quirk of the SMART server)
 * an absolute epoch in seconds or milliseconds. Undefined when absent or unreadable.
 */
export function retryAfterMs (value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined
  const text = value.trim()
  if (/^\d+$/.test(text)) {
    const n = Number(text)
    if (n >= 1e12) return n - now
    if (n >= 1e9) return n * 1000 - now
    return n * 1000
  }
  const date = Date.parse(text)
  return Number.isNaN(date) ? undefined : date - now
}

/** Kick-off, then status polls at the server's Retry-After until the manifest; counts the polls. */
async function runToManifest (req: PlainExportRequest): Promise<{ statusUrl: string, manifest: PlainManifest, polls: number }> {
  const auth: Record<string, string> = req.token === undefined ? {} : { authorization: `Bearer ${req.token}` }
  const kicked = await kickOff(req)
  const kickedBody = await kicked.text()
  const statusUrl = kicked.headers.get('content-location')
  if (kicked.status !== 202 || statusUrl === null) throw new PlainClientError(`kick-off ${kickOffUrl(req)}`, kicked.status, kickedBody)

  const deadline = Date.now() + (req.timeoutMs ?? 120_000)
  let polls = 0
  for (;;) {
    const res = await fetch(statusUrl, { headers: { accept: FHIR_JSON, ...auth } })
    polls++
    const body = await res.text()
    if (res.status === 200) return { statusUrl, manifest: JSON.parse(body) as PlainManifest, polls }
    if (res.status !== 202) throw new PlainClientError(`status ${statusUrl}`, res.status, body)
    if (Date.now() > deadline) throw new PlainClientError(`status ${statusUrl} still in progress after the deadline`, res.status, body)
    const wait = retryAfterMs(res.headers.get('retry-after')) ?? 1000
    await new Promise(resolve => setTimeout(resolve, Math.min(Math.max(wait, 100), req.maxPollMs ?? 2000)))
  }
}

/** Runs an export to its end and downloads every file. */
export async function plainExport (req: PlainExportRequest): Promise<PlainExportResult> {
  const auth: Record<string, string> = req.token === undefined ? {} : { authorization: `Bearer ${req.token}` }
  const { statusUrl, manifest } = await runToManifest(req)

  const download = async (entries: PlainManifest['output'] | undefined): Promise<string[]> => {
    const lines: string[] = []
    for (const entry of entries ?? []) {
      const headers = { accept: 'application/fhir+ndjson', ...(manifest.requiresAccessToken ? auth : {}) }
      const res = await fetch(entry.url, { headers })
      const text = await res.text()
      if (res.status !== 200) throw new PlainClientError(`download ${entry.url}`, res.status, text)
      lines.push(...text.split(/\r?\n/).filter(line => line.trim() !== ''))
    }
    return lines
  }
  return {
    statusUrl,
    manifest,
    lines: await download(manifest.output),
    deleted: await download(manifest.deleted),
    error: await download(manifest.error),
  }
}

/** What {@link plainExportCounted} saw: the manifest and how much the `output` files held. */
export interface PlainCountedResult {
  statusUrl: string
  manifest: PlainManifest
  /** Status requests sent, the last (200) included. */
  polls: number
  /** performance.now() when the manifest was in hand, and when the last byte of the last file was. */
  manifestAt: number
  doneAt: number
  /** Records (non-empty lines) and decoded bytes of every `output` file. */
  records: number
  bytes: number
}

/**
 * The same export as {@link plainExport}, for a large one: every `output` file is downloaded to its end, one
 * after another, as a stream whose lines are counted and dropped. It asks for `gzip, deflate`, as a client that
 * cares about transfer would (fetch decodes the body).
 */
export async function plainExportCounted (req: PlainExportRequest): Promise<PlainCountedResult> {
  const auth: Record<string, string> = req.token === undefined ? {} : { authorization: `Bearer ${req.token}` }
  const { statusUrl, manifest, polls } = await runToManifest(req)
  const manifestAt = performance.now()
  let records = 0
  let bytes = 0
  for (const entry of manifest.output) {
    const headers = { accept: 'application/fhir+ndjson', 'accept-encoding': 'gzip, deflate', ...(manifest.requiresAccessToken ? auth : {}) }
    const res = await fetch(entry.url, { headers })
    if (res.status !== 200 || res.body === null) throw new PlainClientError(`download ${entry.url}`, res.status, await res.text())
    // A record is a non-empty line (NDJSON has no blank lines but a trailing newline may be missing); it may span chunks.
    let open = 0
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      bytes += buf.length
      let from = 0
      for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, from)) {
        if (open + nl - from > 0) records++
        open = 0
        from = nl + 1
      }
      open += buf.length - from
    }
    if (open > 0) records++
  }
  return { statusUrl, manifest, polls, manifestAt, doneAt: performance.now(), records, bytes }
}

/** The token endpoint a FHIR server advertises in `[base]/.well-known/smart-configuration`. */
export async function discoverTokenUrl (base: string): Promise<string> {
  const res = await fetch(`${base}/.well-known/smart-configuration`, { headers: { accept: 'application/json' } })
  const body = await res.text()
  if (res.status !== 200) throw new PlainClientError('smart-configuration', res.status, body)
  const url = (JSON.parse(body) as { token_endpoint?: unknown }).token_endpoint
  if (typeof url !== 'string') throw new PlainClientError('smart-configuration without token_endpoint', res.status, body)
  return url
}

/**
 * SMART Backend Services: signs a client assertion (iss = sub = client id, aud = the token URL, 5 minutes, a fresh
 * jti) with the private JWK and trades it for an access token.
 */
export async function backendServicesToken (opts: {
  tokenUrl: string
  clientId: string
  privateJwk: JWK & { alg: string, kid: string }
  scope?: string
}): Promise<string> {
  const key = await importJWK(opts.privateJwk, opts.privateJwk.alg)
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: opts.privateJwk.alg, kid: opts.privateJwk.kid, typ: 'JWT' })
    .setIssuer(opts.clientId)
    .setSubject(opts.clientId)
    .setAudience(opts.tokenUrl)
    .setExpirationTime('5m')
    .setJti(randomUUID())
    .sign(key)
  const res = await fetch(opts.tokenUrl, {
    method: 'POST',
    headers: { accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      scope: opts.scope ?? 'system/*.read',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    }),
  })
  const body = await res.text()
  if (res.status !== 200) throw new PlainClientError('token request', res.status, body)
  const token = (JSON.parse(body) as { access_token?: unknown }).access_token
  if (typeof token !== 'string') throw new PlainClientError('token answer without access_token', res.status, body)
  return token
}
