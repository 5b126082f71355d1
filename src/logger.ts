/**
 * The process logger: pino JSON. Redaction is the last line of defence; the first is never putting a secret
 * or a record in a log call at all (adapters log page numbers and counts, not bodies).
 */
import { pino, type DestinationStream, type Logger } from 'pino'
import type { Config } from './config.js'
import { registry as builtIn, type AnyUpstream } from './upstreams/registry.js'

/**
 * The request headers every log line shows redacted: credentials and cookies, and each upstream's own secret
 * headers and webhook signature header, as its definition declares them (a new upstream's cannot be forgotten here).
 */
export function redactPaths (upstreams: readonly AnyUpstream[] = builtIn.upstreams): string[] {
  const headers = new Set(['authorization', 'cookie'])
  for (const upstream of upstreams) {
    for (const header of upstream.secretHeaders) headers.add(header.toLowerCase())
    if (upstream.webhook !== undefined) headers.add(upstream.webhook.signatureHeader.name.toLowerCase())
  }
  return [...headers].map(header => `req.headers[${JSON.stringify(header)}]`)
}

/** What a request log line says of a request: no query string, which can hold names and birth dates. */
interface LoggedRequest { method: string, url: string, host?: string, ip?: string }

/** The path of a request URL, without its query string. */
export function pathOf (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

export const serializers = {
  req: (request: { method: string, url: string, host?: string, ip?: string }): LoggedRequest =>
    ({ method: request.method, url: pathOf(request.url), host: request.host, ip: request.ip }),
}

/**
 * The process logger (to stdout, or to `destination`: tests capture the lines), redacting the secret headers of
 * the configuration's upstreams (of the built-in registry when it names none).
 */
export function createLogger (config: Pick<Config, 'LOG_LEVEL'> & Partial<Pick<Config, 'registry'>>, destination?: DestinationStream): Logger {
  const paths = redactPaths((config.registry ?? builtIn).upstreams)
  const options = { level: config.LOG_LEVEL, redact: { paths, censor: '[redacted]' }, serializers }
  return destination === undefined ? pino(options) : pino(options, destination)
}
