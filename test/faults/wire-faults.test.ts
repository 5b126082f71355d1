/**
 * The fault campaign's own instrument: WireFaults draws at most one fault per request (armed ones first, in
 * order, then by ratio from a seeded PRNG), and each kind does to a simulator's answer what it says.
 */
import t from 'tap'
import { UpstreamClient } from '../../src/upstreams/http.js'
import { WIRE_FAULT_KINDS, WireFaults, reshape } from '../../src/upstreams/simulator-kit/wire-faults.js'
import { serveSimulator } from '../../src/upstreams/simulator-kit/server.js'

t.test('armed faults come first and in order, after the requests let through; body faults wait for a JSON answer', async t => {
  const faults = new WireFaults()
  faults.arm('garble', 1, { after: 2 })
  faults.arm('reset')
  t.equal(faults.pending, 2)
  t.same([faults.draw(), faults.draw()], [null, null], 'two requests pass')
  const garble = faults.draw()
  t.same(garble, { kind: 'garble', armed: true })
  faults.unused(garble!)
  t.same(faults.draw(), { kind: 'garble', armed: true }, 'an armed fault that found nothing to spoil waits for the next answer')
  t.same(faults.draw(), { kind: 'reset', armed: true })
  t.same(faults.draw(), null, 'then nothing, without ratios')
  faults.unused({ kind: 'truncate', armed: false })
  t.same(faults.draw(), null, 'a fault drawn by ratio is dropped when unused')
})

t.test('ratios: seeded, so the same seed draws the same faults; bad ratios are refused', async t => {
  const draws = (seed: number) => {
    const faults = new WireFaults({ seed, ratios: { unavailable: 0.2, hang: 0.05 } })
    return Array.from({ length: 400 }, () => faults.draw()?.kind ?? null)
  }
  t.same(draws(5), draws(5))
  t.notSame(draws(5), draws(6))
  const unavailable = draws(5).filter(k => k === 'unavailable').length
  t.ok(unavailable > 40 && unavailable < 120, `about 20% unavailable: ${unavailable} of 400`)
  t.throws(() => new WireFaults({ ratios: { unavailable: 0.7, reset: 0.5 } }), RangeError)
  t.throws(() => new WireFaults().setRatios({ hang: -0.1 }), RangeError)
})

t.test('reshape: arrays come in an envelope, objects keep their keys with every value of another type', async t => {
  t.same(reshape([1, 2]), { count: 2, results: [1, 2] })
  t.same(reshape({ a: [1], b: { c: 1 }, s: 'xyz', n: 3, f: false, z: null }), { a: { 0: 1 }, b: [1], s: 3, n: '3', f: 'false', z: {} })
  t.same(reshape('text'), { value: 'text' })
})

t.test('each kind, over HTTP, through the upstream client', async t => {
  const faults = new WireFaults()
  let handled = 0
  const sim = await serveSimulator(async app => {
    app.get('/x', async () => { handled++; return { status: 'ok', items: [1, 2, 3] } })
    app.get('/text', async (_req, reply) => { handled++; return reply.type('text/plain').send('plain') })
  }, {}, { wireFaults: faults })
  const client = new UpstreamClient({ timeoutMs: 1000, maxAttempts: 1, maxRateLimitRetries: 0 })
  t.teardown(async () => { await client.close(); await sim.close() })
  const get = async (path: string) => {
    try {
      const res = await client.request({ method: 'GET', url: `${sim.url}${path}`, signal: AbortSignal.timeout(10_000), upstream: 'x' })
      try {
        return `${res.status} ${JSON.stringify(res.json())}`
      } catch (err) {
        return `${res.status} ${(err as { code?: string }).code ?? 'error'}`
      }
    } catch (err) {
      return (err as { code?: string }).code ?? String(err)
    }
  }
  const outcomes: Record<string, string> = {}
  for (const kind of WIRE_FAULT_KINDS) {
    faults.arm(kind)
    outcomes[kind] = await get('/x')
  }
  t.same(outcomes, {
    unavailable: 'upstream_unavailable',
    throttle: 'upstream_rate_limited',
    hang: 'upstream_timeout',
    stall: 'upstream_timeout',
    reset: 'upstream_unavailable',
    truncate: '200 invalid_upstream_response',
    garble: '200 invalid_upstream_response',
    wrongShape: '200 {"status":2,"items":{"0":1,"1":2,"2":3}}',
  })
  t.equal(handled, 6, 'unavailable and throttle answer before the upstream; the others after it has acted')
  t.same(faults.applied, Object.fromEntries(WIRE_FAULT_KINDS.map(k => [k, 1])), 'each applied once')

  faults.arm('truncate')
  const text = await client.request({ method: 'GET', url: `${sim.url}/text`, signal: AbortSignal.timeout(10_000), upstream: 'x' })
  t.equal(text.text(), 'plain', 'a body fault leaves an answer that is not JSON alone')
  t.equal(faults.pending, 1, '… and waits')
  t.equal(await get('/x'), '200 invalid_upstream_response', 'for the next JSON answer')
})
