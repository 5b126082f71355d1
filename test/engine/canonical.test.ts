/** Canonical JSON and the request hash that idempotency and in-flight duplicates compare (src/engine/canonical.ts). */
import t from 'tap'
import { canonicalJson, requestHash } from '../../src/engine/canonical.js'

t.test('canonical JSON ignores key order at every depth, keeps array order', async t => {
  t.equal(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), '{"a":{"c":null,"d":[2,1]},"b":1}')
  t.equal(requestHash({ upstream: 'u', resource: 'r', params: { x: 1, y: 2 }, payload: null }),
    requestHash({ resource: 'r', upstream: 'u', payload: null, params: { y: 2, x: 1 } } as never))
  t.not(requestHash({ upstream: 'u', resource: 'r', params: { x: [1, 2] }, payload: null }),
    requestHash({ upstream: 'u', resource: 'r', params: { x: [2, 1] }, payload: null }))
})
