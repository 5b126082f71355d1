/** The FHIR adapter's pure pieces: Retry-After reading and clamping, the manifest, NDJSON lines, OperationOutcomes. */
import t from 'tap'
import { parseManifest, sameLayout } from '../../../src/upstreams/fhir/manifest.js'
import { NdjsonLines } from '../../../src/upstreams/fhir/ndjson.js'
import { isTransient, outcomeError, readOutcome, safeText } from '../../../src/upstreams/fhir/outcome.js'
import { progressNote, retryWait } from '../../../src/upstreams/fhir/waits.js'
import { pollWaitMs } from '../../../src/upstreams/fhir/export-job.js'

const NOW = Date.parse('2026-12-07T12:00:00Z')
const B = { minMs: 1000, maxMs: 60_000 }

t.test('Retry-After: seconds, dates, epochs (ms then s), absurd values, clamped both ways', async t => {
  t.match(retryWait('5', NOW, B), { ms: 5000, form: 'seconds', clamped: null })
  t.match(retryWait('0', NOW, B), { ms: 1000, clamped: 'up' })
  t.match(retryWait('7200', NOW, B), { ms: 60_000, form: 'seconds', clamped: 'down' })
  t.match(retryWait(new Date(NOW + 20_000).toUTCString(), NOW, B), { ms: 20_000, form: 'date', clamped: null })
  t.match(retryWait(String(NOW + 30_000), NOW, B), { ms: 30_000, form: 'epoch-ms' })
  t.match(retryWait(String(Math.ceil((NOW + 30_000) / 1000)), NOW, B), { ms: 30_000, form: 'epoch-s' })
  t.match(retryWait(String(NOW + 300_000), NOW, B), { ms: 60_000, form: 'epoch-ms', clamped: 'down' }, 'the SMART block of 5 minutes, cut to the max')
  t.match(retryWait(String(NOW - 5000), NOW, B), { ms: 1000, form: 'epoch-ms', clamped: 'up' }, 'an epoch just past: ask again soon')
  t.match(retryWait(String(NOW + 10 * 86_400_000), NOW, B), { ms: 60_000, form: 'seconds', clamped: 'down' }, 'too far ahead for an epoch')
  t.match(retryWait(undefined, NOW, B, 5000), { ms: 5000, form: 'none', clamped: null })
  t.match(retryWait('soon', NOW, B, 5000), { ms: 5000, form: 'none' })
  t.equal(progressNote('42% complete, Please wait...'), '42% complete, Please wait...')
  t.equal(progressNote('\u0000\u00e9'), null)
  t.equal(progressNote('x'.repeat(100))?.length, 60)
})

t.test('manifest: files in output, deleted, error order; wrong shapes are invalid_upstream_response', async t => {
  const m = parseManifest(JSON.stringify({
    transactionTime: '2026-12-07T12:00:00Z',
    request: 'x',
    requiresAccessToken: true,
    output: [{ type: 'Patient', url: 'https://f.example/1.ndjson', count: 3 }, { type: 'Observation', url: 'https://f.example/2.ndjson' }],
    error: [{ type: 'OperationOutcome', url: 'https://f.example/e.ndjson' }],
    deleted: [{ type: 'Bundle', url: 'https://f.example/d.ndjson' }],
  }))
  t.same(m.files.map(f => `${f.array}:${f.type}:${f.count}`), ['output:Patient:3', 'output:Observation:null', 'deleted:Bundle:null', 'error:OperationOutcome:null'])
  t.equal(m.requiresAccessToken, true)
  t.same(parseManifest('{"transactionTime":"2026-12-07T12:00:00Z","requiresAccessToken":false,"output":[]}').files, [], 'deleted and error may be left out')
  for (const bad of ['[]', '{"results":[]}', '{"transactionTime":"x","requiresAccessToken":false,"output":[]}',
    '{"transactionTime":"2026-12-07T12:00:00Z","requiresAccessToken":"no","output":[]}',
    '{"transactionTime":"2026-12-07T12:00:00Z","requiresAccessToken":false,"output":[{"type":"Patient","url":"/relative"}]}',
    '{"transactionTime":"2026-12-07T12:00:00Z","requiresAccessToken":false,"output":[{"type":"Patient","url":"ftp://x/y"}]}', '<html>']) {
    t.throws(() => parseManifest(bad), { code: 'invalid_upstream_response' }, bad)
  }
  const other = { ...m, files: [m.files[0], { ...m.files[1], type: 'Condition' }] } as typeof m
  t.ok(sameLayout(m, m, 2))
  t.ok(sameLayout(m, other, 0), 'the files before and at the one being read match')
  t.notOk(sameLayout(m, other, 1), 'the file being read differs')
})

t.test('NDJSON: lines across chunks, CRLF, blank lines, no final newline; bytes kept; bad lines refused', async t => {
  const text = '{"a":1}\r\n\n{"b":"é"}\n  \n{"c":[1,2]}'
  const bytes = Buffer.from(text)
  for (const size of [1, 2, 3, 7, bytes.length]) {
    const lines = new NdjsonLines('f', 1000)
    const out: Buffer[] = []
    for (let i = 0; i < bytes.length; i += size) out.push(...lines.push(bytes.subarray(i, i + size)))
    out.push(...lines.end())
    t.same(out.map(b => b.toString()), ['{"a":1}', '{"b":"é"}', '{"c":[1,2]}'], `chunks of ${size}`)
  }
  t.throws(() => new NdjsonLines('f', 1000).push(Buffer.from('{"a":1}\n[1]\n')), { code: 'invalid_upstream_response', message: /line 2 is not one JSON object/ })
  t.throws(() => { const l = new NdjsonLines('f', 1000); l.push(Buffer.from('{"a":')); l.end() }, { code: 'invalid_upstream_response' }, 'a file cut mid-line')
  t.throws(() => new NdjsonLines('f', 10).push(Buffer.from('{"a":"0123456789"}')), { code: 'upstream_response_too_large' }, 'a line past the record limit, before its end')
  const repaired = new NdjsonLines('f', 100).push(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d, 0x0a]))
  t.equal(repaired[0]?.toString(), '{"a":"\ufffd"}', 'invalid UTF-8 repaired as everywhere in the gateway')
})

t.test('OperationOutcome: diagnostics made safe, transient recognised, status mapped', async t => {
  const body = JSON.stringify({
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code: 'processing', diagnostics: 'See https://s3.example/f.ndjson?X-Amz-Signature=secret with Bearer abc.def and eyJhbGciOi.eyJzdWIi.c2ln\u0007' }],
  })
  const o = readOutcome(body)
  t.same(o?.codes, ['processing'])
  t.equal(o?.diagnostics, 'See /f.ndjson with Bearer [redacted] and [redacted]', 'a URL cut to its path: no host, no query')
  t.equal(safeText('at https://admin:s3cret@db.internal:5432/x?y=1 and http://user@files.internal and HTTPS://h/'), 'at /x and / and /', 'credentials and hosts dropped')
  t.ok(isTransient(500, JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ code: 'transient' }] })))
  t.notOk(isTransient(500, body))
  t.notOk(isTransient(503, JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ code: 'transient' }] })))
  t.equal(readOutcome('not json'), null)
  t.match(outcomeError('fhir GET /$export', 400, body), { code: 'upstream_rejected', upstreamStatus: 400, message: 'fhir GET /$export answered 400: See /f.ndjson with Bearer [redacted] and [redacted]' })
  t.match(outcomeError('x', 401, ''), { code: 'upstream_unauthorized', message: 'x answered 401' })
  t.match(outcomeError('x', 500, body), { code: 'upstream_failed' })
  t.match(outcomeError('x', 400, body, 'upstream_failed'), { code: 'upstream_failed' })
})

t.test('poll waits grow with the export\'s age: under 60 polls in any minute at the SMART server\'s Retry-After: 1', async t => {
  t.equal(pollWaitMs(1000, 5000, B), 1000, 'a young export: as the server asks')
  t.equal(pollWaitMs(1000, 60_000, B), 6000, 'a minute old: a tenth of its age')
  t.equal(pollWaitMs(1000, 3_600_000, B), 60_000, 'never past the maximum')
  t.equal(pollWaitMs(30_000, 60_000, B), 30_000, 'a longer Retry-After stands')
  const polls: number[] = []
  for (let at = 0; at < 3_600_000; at += pollWaitMs(1000, at, B)) polls.push(at)
  const perMinute = (from: number) => polls.filter(p => p >= from && p < from + 60_000).length
  t.ok(Math.max(...polls.map(perMinute)) < 40, `at most ${Math.max(...polls.map(perMinute))} polls in any minute`)
  t.ok(polls.length < 150, `${polls.length} polls in an hour`)
})
