/**
 * The one check on every URL an upstream hands the gateway to follow (a redirect, a download link, a `next`
 * link, a FHIR manifest's file URLs) rather than one built from the upstream's configured base URL. Such a URL
 * may lead to:
 * - the upstream's own configured origin (scheme, host and port of its base URL: a sandbox simulator on loopback);
 * - an origin listed in UPSTREAM_ALLOWED_ORIGINS (an operator's private object store, say);
 * - any other host only when every address it resolves to is a public unicast one. Private (RFC 1918, fc00::/7),
 *   loopback, link-local (the 169.254.169.254 metadata service), unspecified, CGNAT, multicast and reserved
 *   addresses, and their IPv4-mapped IPv6 spellings, are refused.
 * In production plain `http` is refused too, except to the two kinds of origin allowed by name.
 *
 * The address is judged after DNS resolution, inside the connection's own lookup, and the socket connects to the
 * very address judged: there is no second lookup that a rebinding DNS server could answer differently.
 *
 * Why this is written here: ipaddr.js classifies the addresses; the rest is the glue between undici's connector
 * and Node's lookup. The maintained SSRF filters (request-filtering-agent, ssrf-req-filter) are node:http Agents,
 * which undici cannot use, and @atproto-labs/fetch-node wraps fetch() with its own request type and has no
 * allow-list of origins; each of them uses this same lookup technique.
 */
import dns, { type LookupAddress } from 'node:dns'
import { isIP, type LookupFunction } from 'node:net'
import ipaddr from 'ipaddr.js'
import { buildConnector } from 'undici'
import { UpstreamError } from '../domain/errors.js'

/** The job's error message: it names no address, host or port, whatever the upstream sent. */
export const URL_REFUSED_MESSAGE = 'the upstream sent the gateway to an address it does not allow (see UPSTREAM_ALLOWED_ORIGINS)'

/** The failure of a request the guard refused; carries no URL. */
export function urlRefused (): UpstreamError {
  return new UpstreamError('upstream_url_refused', URL_REFUSED_MESSAGE)
}

/**
 * Whether an address may be reached by a URL an upstream supplied: only ipaddr.js's `unicast` range (every
 * special-purpose range is something else), with an IPv4-mapped IPv6 address judged as the IPv4 it maps.
 */
export function isPublicAddress (address: string): boolean {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address
  if (isIP(bare) === 0) return false
  try {
    return ipaddr.process(bare).range() === 'unicast'
  } catch {
    return false
  }
}

/**
 * Parses UPSTREAM_ALLOWED_ORIGINS (`scheme://host:port`, comma-separated) into origins as `URL.origin` spells
 * them, or says what is wrong. A path, query, fragment or user name is refused: an origin is all the guard checks.
 */
export function parseAllowedOrigins (value: string | undefined): { origins: string[] } | { problem: string } {
  const origins: string[] = []
  for (const entry of (value ?? '').split(',').map(s => s.trim()).filter(Boolean)) {
    let url: URL
    try {
      url = new URL(entry)
    } catch {
      return { problem: `"${entry}" is not an origin; expected scheme://host:port, e.g. https://files.internal:8443` }
    }
    const bare = url.pathname === '/' && url.search === '' && url.hash === '' && url.username === '' && url.password === ''
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || !bare) {
      return { problem: `"${entry}" is not an origin; expected scheme://host:port (http or https, no path), e.g. https://files.internal:8443` }
    }
    if (!origins.includes(url.origin)) origins.push(url.origin)
  }
  return { origins }
}

/** How the guard is set up: from UPSTREAM_ALLOWED_ORIGINS and NODE_ENV. */
export interface UrlGuardOptions {
  /** Origins (`URL.origin`) that supplied URLs may reach whatever their address. */
  allowedOrigins?: readonly string[]
  /** Refuse plain http to any origin not allowed by name (NODE_ENV=production). */
  httpsOnly?: boolean
  /** The resolver behind the filtering lookup; dns.lookup unless a test gives another. */
  resolve?: (hostname: string, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void
}

/**
 * How a supplied URL travels: `trusted` (its origin is allowed by name) through the ordinary pool, `public`
 * through the pool whose connections resolve with {@link UrlGuard.lookup}.
 */
export type UrlRoute = 'trusted' | 'public'

const systemResolve: NonNullable<UrlGuardOptions['resolve']> = (hostname, callback) =>
  dns.lookup(hostname, { all: true, verbatim: true }, callback)

/** The guard of one gateway process, shared by every adapter through the upstream client. */
export class UrlGuard {
  readonly #allowed: ReadonlySet<string>
  readonly #httpsOnly: boolean
  readonly #resolve: NonNullable<UrlGuardOptions['resolve']>

  constructor (o: UrlGuardOptions = {}) {
    this.#allowed = new Set(o.allowedOrigins ?? [])
    this.#httpsOnly = o.httpsOnly ?? false
    this.#resolve = o.resolve ?? systemResolve
  }

  /**
   * Decides, before any connection, how a URL the upstream at `baseUrl` supplied may travel (null: a URL no
   * upstream supplied, such as a completion callback's, which only the allowed origins trust); throws
   * `upstream_url_refused` when it may not. A host name is judged later, by {@link lookup}, on the connection.
   */
  check (url: URL, baseUrl: string | URL | null): UrlRoute {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw urlRefused()
    if ((baseUrl !== null && url.origin === new URL(baseUrl).origin) || this.#allowed.has(url.origin)) return 'trusted'
    if (this.#httpsOnly && url.protocol !== 'https:') throw urlRefused()
    if (isIP(url.hostname.replace(/^\[|\]$/g, '')) !== 0 && !isPublicAddress(url.hostname)) throw urlRefused()
    return 'public'
  }

  /**
   * A net/tls lookup that resolves once and refuses the connection unless every address found is public: a
   * name answering with one public and one private address could otherwise be reached on the private one.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.#resolve(hostname, (err, found) => {
      if (err !== null) {
        callback(err, '', 0)
        return
      }
      const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family
      const addresses = found.filter(a => family === undefined || family === 0 || a.family === family)
      if (addresses.length === 0 || found.some(a => !isPublicAddress(a.address))) {
        callback(urlRefused(), '', 0)
        return
      }
      if (options.all === true) callback(null, addresses)
      else callback(null, (addresses[0] as LookupAddress).address, (addresses[0] as LookupAddress).family)
    })
  }

  /**
   * The connector of the pool that carries `public` URLs: every connection resolves through {@link lookup}.
   * Node skips the lookup for an IP literal, so a literal is judged here as well.
   */
  connector (options: buildConnector.BuildOptions = {}): buildConnector.connector {
    const connect = buildConnector({ ...options, lookup: this.lookup })
    return (opts, callback) => {
      if (isIP(opts.hostname.replace(/^\[|\]$/g, '')) !== 0 && !isPublicAddress(opts.hostname)) {
        callback(urlRefused(), null)
        return
      }
      connect(opts, callback)
    }
  }
}
