/**
 * The bad-input fuzzer's job bodies (run by bad-input.test.ts over the built-in registry, and by
 * test/upstreams/extra-upstream.test.ts over a test's own): every upstream's worked example and richer bodies,
 * spoiled one field at a time or given any string where strings go. The oracle is the body's own schema: a body it
 * accepts must be accepted, one it refuses must be a 400 problem naming a field on the mutated path.
 */
import fc from 'fast-check'
import type { Test } from 'tap'
import { jobRequestSchema } from '../../src/api/job-request.js'
import { findUnstorableString, jsonPointer } from '../../src/api/validation.js'
import type { Registry } from '../../src/upstreams/registry.js'
import type { TestGateway } from '../helpers/gateway.js'
import { basesOf, edit, mutatedBody, nodes, poisoned, problemIssue, within, type Json, type Problem } from './bad-input-arbitraries.js'
import { CAMPAIGN_SEED, type Tally } from './campaign.js'

/** Runs per property: enough to find what these inputs can break, within the campaign's time budget. */
export const RUNS = Number(process.env.FAULT_RUNS ?? 300)

/** Runs one property with a fixed seed; a counterexample fails the test with everything needed to replay it. */
export async function check<T> (
  t: Test, tally: Tally, name: string, seed: number, arb: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>
): Promise<void> {
  const details = await fc.check(fc.asyncProperty(arb, predicate), { seed, numRuns: RUNS, endOnFailure: false })
  const tried = details.numRuns
  for (let i = 0; i < tried; i++) tally.record(`${name} run ${i + 1}`, { survived: !(details.failed && i === tried - 1), note: details.failed ? String((details.errorInstance as Error)?.message ?? details.errorInstance) : undefined })
  if (details.failed) {
    const example = JSON.stringify(details.counterexample, (_k, v: unknown) => typeof v === 'string' && v.length > 200 ? `${v.slice(0, 200)}…(${v.length} chars)` : v)
    t.fail(`${name}: ${String((details.errorInstance as Error)?.message ?? details.errorInstance)}`, {
      seed, path: details.counterexamplePath, counterexample: example?.slice(0, 2000), replay: `FAULT_SEED=${CAMPAIGN_SEED} (property seed ${seed})`,
    })
  } else {
    t.pass(`${name}: ${tried} runs, every answer as the contract says (seed ${seed})`)
  }
}

/**
 * POST /jobs bodies of every upstream of `registry`, spoiled (seeds[0]) and given any string (seeds[1]), against a
 * gateway serving that registry. Pointers written without RFC 6901's escapes are collected in `unescaped`.
 */
export async function fuzzJobBodies (
  t: Test, gw: TestGateway, registry: Registry, opts: { tally: Tally, seeds: [number, number], unescaped: string[] }
): Promise<void> {
  const { tally, seeds, unescaped } = opts
  const schema = jobRequestSchema(registry.upstreams)
  const bases = basesOf(registry)
  for (const base of bases) t.ok(schema.safeParse(base).success, `base body ${JSON.stringify(base).slice(0, 60)}… is valid`)
  await check(t, tally, 'POST /jobs, one field wrong', seeds[0], fc.record({
    mutation: mutatedBody(bases, registry),
    idempotencyKey: fc.option(fc.string({ minLength: 0, maxLength: 300 }).map(s => s.replace(/[^\x20-\x7e]/g, '')), { nil: undefined }),
  }), async ({ mutation, idempotencyKey }) => {
    const text = JSON.stringify(mutation.body)
    const headers: Record<string, string> = idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }
    const res = await gw.request('/jobs', { method: 'POST', body: text, headers })
    const answer = await res.text()
    const forbidden = poisoned(text) // refused by the JSON parser before any schema
    // HTTP drops a header value's leading and trailing blanks: a key of spaces arrives empty.
    const sent = idempotencyKey?.trim()
    const keyOk = sent === undefined || (sent.length >= 1 && sent.length <= 255)
    const valid = !forbidden && keyOk && schema.safeParse(JSON.parse(text)).success
    if (valid) {
      if (res.status !== 202 && res.status !== 200 && res.status !== 422) throw new Error(`a valid body answered ${res.status}: ${answer.slice(0, 300)}`)
      return
    }
    // A spoiled body over a read job's 64 KiB (a Clinia body whose upstream was changed) is refused for its size.
    const oversized = Buffer.byteLength(text) > 64 * 1024
    const issue = problemIssue(res, answer, oversized ? [400, 413] : [400])
    if (issue !== null) throw new Error(issue)
    if (forbidden || !keyOk || res.status === 413) return
    const errors = (JSON.parse(answer) as Problem).errors ?? []
    // An unknown key is named by its object; a missing key or a wrong value by its own pointer, one below it,
    // or its object (a union that matched no branch).
    const parent = mutation.pointer.split('/').slice(0, -1).join('/')
    const names = (pointer: string) => errors.some(e => e.in === 'body' &&
      (mutation.how === 'add' ? e.pointer === pointer || e.pointer === mutation.added : within(pointer, e.pointer) || e.pointer === parent))
    if (names(mutation.pointer)) return
    // The same field, its pointer written without RFC 6901's escapes (~0 for ~, ~1 for /): named, but noted.
    const raw = (p: string | null) => p === null ? null : p.replace(/~1/g, '/').replace(/~0/g, '~')
    if (errors.some(e => e.in === 'body' && [raw(mutation.pointer), raw(mutation.added), raw(parent)].includes(e.pointer))) {
      unescaped.push(`${JSON.stringify(errors[0]?.pointer)} for ${mutation.added ?? mutation.pointer}`)
      return
    }
    throw new Error(`${mutation.how} at ${mutation.pointer || '(root)'}: no error names it: ${JSON.stringify(errors).slice(0, 300)}`)
  })

  // Strings in the places strings go: these pass the schema where it takes free text, and must still be stored.
  const stringLeaves = bases.flatMap((base, b) => nodes(base).filter(([, v]) => typeof v === 'string').map(([pointer]) => ({ b, pointer })))
  await check(t, tally, 'POST /jobs, any string in a string field', seeds[1], fc.record({
    leaf: fc.constantFrom(...stringLeaves),
    value: fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), fc.constantFrom('\u0000', 'x\u0000y', '\ud800', 'a\udfffb', '\u001b[31m', '\u2028', '\ufeff', 'é'.normalize('NFD'))),
  }), async ({ leaf, value }) => {
    const text = JSON.stringify(edit(bases[leaf.b] as Json, leaf.pointer, value))
    const res = await gw.request('/jobs', { method: 'POST', body: text })
    const answer = await res.text()
    const unstorable = findUnstorableString(JSON.parse(text))
    if (schema.safeParse(JSON.parse(text)).success && unstorable === null) {
      if (res.status !== 202 && res.status !== 200) throw new Error(`${JSON.stringify(value)} at ${leaf.pointer} (valid by the schema) answered ${res.status}: ${answer.slice(0, 200)}`)
      return
    }
    if (unstorable !== null && schema.safeParse(JSON.parse(text)).success) {
      // What PostgreSQL cannot store (NUL, a lone surrogate) is refused as the client's error, naming the field.
      const named = res.status === 400 && (JSON.parse(answer) as {
        errors?: Array<{ pointer: string }>,
      }).errors?.some(e => e.pointer === jsonPointer(unstorable))
      if (named !== true) throw new Error(`${JSON.stringify(value)} at ${leaf.pointer}: expected 400 naming ${jsonPointer(unstorable)}, got ${res.status}: ${answer.slice(0, 200)}`)
      return
    }
    const issue = problemIssue(res, answer, [400])
    if (issue !== null) throw new Error(`${JSON.stringify(value)} at ${leaf.pointer}: ${issue}`)
  })
}
