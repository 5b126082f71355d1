/**
 * The sandbox's SMART client key. Sandbox simulators check secrets drawn for each process (random strings), and a
 * SMART client needs a key pair: this derives a P-384 pair from such a string, so that the simulator (which gets
 * the public half) and the adapter (the private half) are given the same drawn secret, and no published key opens
 * the sandbox. Node's ECDH computes the public point; nothing here signs or verifies.
 */
import { createECDH, createHash } from 'node:crypto'

export interface SandboxKeyPair { privateJwk: Record<string, unknown>, publicJwk: Record<string, unknown> }

export function sandboxKeyPair (secret: string): SandboxKeyPair {
  // A 384-bit digest is below P-384's order but for a chance of about 2^-190.
  const d = createHash('sha384').update(`bulk-gateway fhir sandbox key\u0000${secret}`).digest()
  const ecdh = createECDH('secp384r1')
  ecdh.setPrivateKey(d)
  const point = ecdh.getPublicKey() // 0x04, x, y
  const publicJwk = {
    kty: 'EC',
    crv: 'P-384',
    x: point.subarray(1, 49).toString('base64url'),
    y: point.subarray(49).toString('base64url'),
    kid: createHash('sha256').update(point).digest('hex').slice(0, 32),
    alg: 'ES384',
  }
  return { publicJwk, privateJwk: { ...publicJwk, d: d.toString('base64url') } }
}
