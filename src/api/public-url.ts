/**
 * The base URL clients reach the gateway at (scheme, host and path prefix, no trailing slash): what `Location`
 * headers and Swagger UI's server start with. PUBLIC_BASE_URL fixes it outright; otherwise it comes from the
 * request, and a trusted reverse proxy may add the path it serves the gateway under (`X-Forwarded-Prefix`).
 */
import type { FastifyReply, FastifyRequest } from 'fastify'

/** What {@link publicBaseUrl} is computed from. */
export interface PublicUrlParts {
  /** PUBLIC_BASE_URL, when set. */
  configured?: string | undefined
  /** The request's scheme and host, as Fastify gives them (it honours trusted X-Forwarded-Proto/Host itself). */
  protocol: string
  host: string
  /** The X-Forwarded-Prefix header as received, if any. */
  forwardedPrefix: string | string[] | undefined
  /** Whether the request came from a proxy TRUST_PROXY trusts: only then does X-Forwarded-Prefix count. */
  fromTrustedProxy: boolean
}

// Segments of RFC 3986 unreserved characters only: no scheme or host (`//`), no CR/LF, no quotes, no
// percent-encoding that could hide a `..`.
const prefixPattern = /^(?:\/[A-Za-z0-9._~-]+)+$/
const maxPrefixLength = 256

/**
 * The path prefix in an X-Forwarded-Prefix value (`/bulk/` → `/bulk`), or '' when there is none or it is not a
 * plain absolute path. Like Fastify with X-Forwarded-Host/Proto, the last of several values wins: it is the one
 * the nearest proxy set.
 */
export function forwardedPrefix (header: string | string[] | undefined): string {
  const joined = Array.isArray(header) ? header.join(',') : header
  if (joined === undefined) return ''
  const prefix = joined.slice(joined.lastIndexOf(',') + 1).trim().replace(/\/+$/, '')
  if (prefix === '' || prefix.length > maxPrefixLength || !prefixPattern.test(prefix)) return ''
  if (prefix.split('/').some(segment => segment === '.' || segment === '..')) return ''
  return prefix
}

/** Scheme, host and path prefix, without a trailing slash. */
export function publicBaseUrl (parts: PublicUrlParts): string {
  if (parts.configured !== undefined) return parts.configured.replace(/\/+$/, '')
  const prefix = parts.fromTrustedProxy ? forwardedPrefix(parts.forwardedPrefix) : ''
  return `${parts.protocol}://${parts.host}${prefix}`
}

const probeHost = 'trust-probe.invalid'

/**
 * Whether Fastify trusts the proxy this request came through (its `trustProxy` decision for the connection's
 * peer). Fastify keeps that decision to itself, so ask it: on a view of the request whose only difference is an
 * X-Forwarded-Host, `host` answers the forwarded value exactly when the peer is trusted. A hop count never
 * trusts (Fastify fails closed there), and neither does this.
 */
export function isFromTrustedProxy (request: FastifyRequest): boolean {
  const probe = Object.create(request, {
    headers: { value: { ...request.headers, 'x-forwarded-host': probeHost } },
  }) as FastifyRequest
  return probe.host === probeHost
}

/** {@link publicBaseUrl} for a request. */
export function publicBaseUrlOf (request: FastifyRequest, configured: string | undefined): string {
  const header = request.headers['x-forwarded-prefix']
  return publicBaseUrl({
    configured,
    protocol: request.protocol,
    host: request.host,
    forwardedPrefix: header,
    fromTrustedProxy: header !== undefined && configured === undefined && isFromTrustedProxy(request),
  })
}

/**
 * An onRequest hook that sends `path` (and only it) on to `path/` with a relative redirect, query kept. A page
 * whose links are relative only works from the slash form; the relative Location keeps whatever prefix the
 * client's URL has, even from a proxy that does not announce it.
 */
export function trailingSlashRedirect (path: string): (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> {
  const lastSegment = path.slice(path.lastIndexOf('/') + 1)
  return async (request, reply) => {
    const query = request.url.indexOf('?')
    const pathname = query === -1 ? request.url : request.url.slice(0, query)
    if (pathname !== path) return
    return reply.redirect(`${lastSegment}/${query === -1 ? '' : request.url.slice(query)}`)
  }
}
