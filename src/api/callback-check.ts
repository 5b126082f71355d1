/**
 * The checks on a `POST /jobs` body's `callback` that its schema cannot make: the origin is one the operator
 * allowed (CALLBACK_ALLOWED_ORIGINS), the URL passes the outbound URL guard (no private, loopback or link-local
 * address unless its origin is in UPSTREAM_ALLOWED_ORIGINS; https only in production, likewise), and the client
 * has a secret to sign with (CALLBACK_SECRETS). Each refusal is a 400 with its own code and the field's pointer.
 */
import type { CallbackUrlCheck } from '../contract/callback.js'
import { ProblemError } from './problem.js'

/** What the checks need from the configuration and the outbound client. */
export interface CallbackPolicy {
  /** CALLBACK_ALLOWED_ORIGINS, as `URL.origin` spells them. */
  allowedOrigins: readonly string[]
  /** Whether CALLBACK_SECRETS holds a secret for this client. */
  hasSecret (clientId: string): boolean
  guard: CallbackUrlCheck
}

/** Throws the problem a client's callback URL has, if any. The URL itself is never repeated (its query may be a secret). */
export function checkCallback (policy: CallbackPolicy, clientId: string, callbackUrl: string): void {
  const url = new URL(callbackUrl)
  const refuse = (code: 'callback_origin_not_allowed' | 'callback_url_refused' | 'callback_secret_missing', pointer: string, detail: string): never => {
    throw new ProblemError(code, detail, { errors: [{ in: 'body', pointer, detail }] })
  }
  if (!policy.allowedOrigins.includes(url.origin)) {
    refuse('callback_origin_not_allowed', '/callback/url', policy.allowedOrigins.length === 0
      ? 'This gateway sends no callbacks: CALLBACK_ALLOWED_ORIGINS is empty.'
      : `The callback's origin ${url.origin} is not one this gateway may call (CALLBACK_ALLOWED_ORIGINS).`)
  }
  if (url.username !== '' || url.password !== '') {
    refuse('callback_url_refused', '/callback/url', 'A callback URL may not carry a user name or password: the signature authenticates the gateway.')
  }
  if (policy.guard.refuses(url)) {
    refuse('callback_url_refused', '/callback/url', 'The callback\'s address is one the gateway does not call: a private, loopback or link-local address ' +
      '(unless its origin is in UPSTREAM_ALLOWED_ORIGINS), or plain http in production.')
  }
  if (!policy.hasSecret(clientId)) {
    refuse('callback_secret_missing', '/callback', `Client ${clientId} has no signing secret (CALLBACK_SECRETS): its callbacks could not be signed. Ask the operator for one.`)
  }
}
