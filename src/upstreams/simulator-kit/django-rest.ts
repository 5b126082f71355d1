/**
 * Django REST framework's own answers, for the simulators of upstreams built on it: DrChrono (DRF with
 * django-oauth-toolkit) and OCL (oclapi2). A throttle, a server error and a boolean in a query read the same in
 * both, as DRF writes them, whatever each upstream adds around them.
 */
import type { FastifyReply } from 'fastify'
import { sendProxyError, type AdmissionStats, type InjectedStatus } from './admission.js'

/** DRF's body of an unhandled server error. */
export const DRF_SERVER_ERROR = { detail: 'A server error occurred.' }

/** DRF's words for a request without credentials, and for credentials it does not accept. */
export const NOT_PROVIDED = 'Authentication credentials were not provided.'
export const INVALID_TOKEN = 'Invalid token.'

/**
 * DRF's 401, counted: `challenge` is the WWW-Authenticate of the upstream's scheme (`Bearer realm="api"`,
 * `Token`), `detail` says why. False, so an admission can end with it.
 */
export function refuseCredentials (reply: FastifyReply, stats: AdmissionStats, challenge: string, detail: string): false {
  stats.unauthorized++
  void reply.code(401).header('www-authenticate', challenge).send({ detail })
  return false
}

/** How the simulators spell true and false in a query: a strict subset of what DRF reads, so a client's spelling is checked. */
export const DRF_TRUE: ReadonlySet<string> = new Set(['true', 'True', '1'])
export const DRF_FALSE: ReadonlySet<string> = new Set(['false', 'False', '0'])

/**
 * The `detail` of DRF's 429, singular included (adapters must read both forms). DRF words it from the same wait
 * as Retry-After; without one (`withWait` false) it has no time to name, and a client has nothing to go by but
 * its own backoff.
 */
export function throttledDetail (seconds: number, withWait: boolean): string {
  return withWait ? `Request was throttled. Expected available in ${seconds} second${seconds === 1 ? '' : 's'}.` : 'Request was throttled.'
}

/** An injected server error: DRF's own 500, or the 502 or 503 of the proxy in front of the upstream. */
export function sendServerError (reply: FastifyReply, status: InjectedStatus): FastifyReply {
  return status === 500 ? reply.code(500).send(DRF_SERVER_ERROR) : sendProxyError(reply, status)
}
