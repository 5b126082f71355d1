/**
 * The SMART Health IT bulk-data-server ("the peer"): a real FHIR Bulk Data server nobody here wrote, kept
 * outside the repository in `../shared/peers` (its README says what it serves and its quirks). A test starts one
 * server per file or per test with `startPeer`; its stdout after the ready line is the access log, kept in
 * memory so a test can see what a client sent (a DELETE of a status URL, how many kick-offs).
 *
 * Where the peers folder is missing the tests skip with one line saying where to put it; under `.ci/run`
 * (BULK_GATEWAY_CI=1) they fail instead, as the Chromium and nginx tests do (programs.ts).
 *
 * The process itself (start, stop, access log) is `smart-peer-process.ts`, which the bench uses too.
 */
import type { Test } from 'tap'
import { PEER_MISSING, launchPeer, peerAvailable, type SmartPeer } from './smart-peer-process.js'

export {
  peerAvailable, peersDir, privateKey, publicKeySet, simSegment,
  type PeerKeyAlg, type PrivateJwk, type SmartPeer,
} from './smart-peer-process.js'

/**
 * True when the peer can be started. Otherwise fails `t` under CI (BULK_GATEWAY_CI=1) or skips it with one line
 * saying how to get the peer, and returns false.
 */
export function requirePeer (t: Test): boolean {
  if (peerAvailable()) return true
  const message = PEER_MISSING
  if (process.env.BULK_GATEWAY_CI === '1') t.fail(message)
  else t.pass('the tests against the SMART bulk-data-server peer', { skip: message })
  return false
}

/**
 * Starts the peer and stops it with SIGTERM at `t`'s teardown (registered as soon as the process exists).
 * `readyTimeoutMs` only detects a hang; the default allows a first install.
 */
export async function startPeer (t: Test, opts: { readyTimeoutMs?: number } = {}): Promise<SmartPeer> {
  return launchPeer({ ...opts, onSpawn: stop => t.teardown(stop) })
}
