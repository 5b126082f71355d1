/**
 * FHIR_PRIVATE_KEY: the private JWK that signs SMART Backend Services assertions, checked once at start-up so that a
 * bad key is a configuration error naming the variable, not a failed job hours later. Pure: no I/O.
 */
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto'

/** The two signing algorithms SMART Backend Services requires servers to support. */
export type AssertionAlg = 'RS384' | 'ES384'

/** A private JWK ready for jose's importJWK, and the algorithm and key id its assertions carry. */
export interface SigningKey {
  jwk: Record<string, unknown>
  alg: AssertionAlg
  kid: string
}

/**
 * The signing key in `text`, or a sentence saying what is wrong with it (never quoting the key). The algorithm is the
 * JWK's `alg` when it names RS384 or ES384, else follows from `kty` (RSA → RS384, EC on P-384 → ES384).
 */
export function parseSigningKey (text: string): SigningKey | string {
  let jwk: unknown
  try {
    jwk = JSON.parse(text)
  } catch {
    return 'is not JSON; expected a private JWK (one key, not a key set)'
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return 'is not a JWK object'
  const key = jwk as Record<string, unknown>
  if (Array.isArray(key.keys)) return 'is a JWK set; give the one private key (the entry with "d")'
  if (typeof key.d !== 'string') return 'has no private part ("d"): it is a public key'
  if (typeof key.kid !== 'string' || key.kid === '') return 'has no "kid": SMART servers find the public key by it'
  let alg: AssertionAlg
  if (key.alg !== undefined) {
    if (key.alg !== 'RS384' && key.alg !== 'ES384') return `has "alg" ${JSON.stringify(String(key.alg).slice(0, 10))}; expected RS384 or ES384`
    alg = key.alg
  } else if (key.kty === 'RSA') {
    alg = 'RS384'
  } else if (key.kty === 'EC') {
    alg = 'ES384'
  } else {
    return 'has a "kty" other than RSA or EC'
  }
  if (alg === 'RS384' && key.kty !== 'RSA') return 'says RS384 but is not an RSA key'
  if (alg === 'ES384' && (key.kty !== 'EC' || key.crv !== 'P-384')) return 'says ES384 but is not an EC key on P-384'
  try {
    // Node checks the numbers (a point off the curve, a malformed modulus); a signature checked against the public
    // half proves "d" belongs to them, which Node does not check for EC keys. jose would only find out on first use.
    const priv = createPrivateKey({ key: key as never, format: 'jwk' })
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicPart } = key
    const probe = Buffer.from('bulk-gateway FHIR_PRIVATE_KEY check')
    if (!verify('sha384', probe, createPublicKey({ key: publicPart as never, format: 'jwk' }), sign('sha384', probe, priv))) throw new Error('mismatch')
  } catch {
    return 'is not a valid private key'
  }
  // key_ops ["sign"] is kept: importJWK honours it, and a key meant for signing passes.
  return { jwk: key, alg, kid: key.kid }
}
