/**
 * The end of every simulator's admission of a request. Each upstream checks its own things first (a User-Agent,
 * an API key, a token); then rate limits and injected faults give a {@link Verdict}: let the request through,
 * throttle it, or answer an injected server error. Those three are counted, and a proxy's 502 and 503 worded,
 * the same way in every simulator; only the 429 and the 500 are each upstream's own.
 */
import type { FastifyReply } from 'fastify'

/**
 * The server errors a test injects: a 500 from the upstream itself (in its own words), a 502 or a 503 from the
 * proxy or load balancer in front of it (see {@link proxyErrorText}).
 */
export type InjectedStatus = 500 | 502 | 503

/**
 * What a simulator decides for a request before its endpoint: let it through, throttle it (with whatever the
 * upstream's 429 carries, e.g. `{ seconds }`), or answer an injected error.
 */
export type Verdict<Throttle extends object = Record<never, never>, Status extends number = InjectedStatus> =
  { kind: 'pass' } | ({ kind: 'throttle' } & Throttle) | { kind: 'error', status: Status }

/** What every simulator that checks credentials and injects faults counts, in the same sense; part of its stats. */
export const ADMISSION_STATS = {
  /** Requests refused for missing or wrong credentials. */
  unauthorized: 0,
  /** Requests answered 429: injected, or over a rate limit the simulator keeps. */
  throttled: 0,
  /** Requests answered an injected server error. */
  serverErrors: 0,
}

export type AdmissionStats = typeof ADMISSION_STATS

/**
 * True when the verdict lets the request through; otherwise the upstream's answer is sent (`throttle` words its
 * 429, `error` its injected server error) and false returned, so a route reads `if (!admit(…)) return reply`.
 */
export function passes<Throttle extends object> (verdict: Verdict<Throttle>, answer: {
  throttle: (throttle: Throttle) => unknown
  error: (status: InjectedStatus) => unknown
}): boolean {
  if (verdict.kind === 'pass') return true
  if (verdict.kind === 'throttle') answer.throttle(verdict)
  else answer.error(verdict.status)
  return false
}

/**
 * The words of a 502 or a 503: the proxy or load balancer in front of an upstream answers those for it, so every
 * simulator says them the same way, whatever the upstream's own dialect.
 */
export function proxyErrorText (status: 502 | 503): string {
  return status === 502 ? 'Bad Gateway' : 'Service Unavailable'
}

/** Sends a proxy's 502 or 503: {@link proxyErrorText} in plain text. */
export function sendProxyError (reply: FastifyReply, status: 502 | 503): FastifyReply {
  return reply.code(status).type('text/plain; charset=utf-8').send(proxyErrorText(status))
}
