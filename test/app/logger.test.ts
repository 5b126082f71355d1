/** Log hygiene derived from the registry: each upstream's secret headers are redacted without editing the logger. */
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { redactPaths } from '../../src/logger.js'
import { upstreams, type AnyUpstream } from '../../src/upstreams/registry.js'

t.test('every registered upstream\'s secret and signature headers are redacted', async t => {
  const paths = redactPaths()
  for (const upstream of upstreams) {
    for (const header of upstream.secretHeaders) t.ok(paths.includes(`req.headers["${header}"]`), `${upstream.name}: ${header}`)
    if (upstream.webhook !== undefined) t.ok(paths.includes(`req.headers["${upstream.webhook.signatureHeader.name}"]`), `${upstream.name}: signature`)
  }
  t.ok(paths.includes('req.headers["authorization"]'))
})

t.test('a new upstream\'s headers are redacted from its definition alone', async t => {
  const extra = {
    ...upstreams[0]!,
    name: 'extra',
    secretHeaders: ['X-Extra-Key'],
    webhook: { signatureHeader: { name: 'x-extra-signature', format: /^v1,/ }, maxBodyBytes: 1024, receive: () => ({ kind: 'reply', status: 200, body: {} }) },
  } as AnyUpstream
  const lines: string[] = []
  const log = pino({ redact: { paths: redactPaths([...upstreams, extra]), censor: '[redacted]' } }, new Writable({
    write (chunk: Buffer, _encoding, done) { lines.push(chunk.toString()); done() },
  }))
  log.info({ req: { headers: { 'x-extra-key': 'secret-1', 'x-extra-signature': 'v1,secret-2', accept: 'application/json' } } }, 'request')
  t.equal(lines.length, 1)
  t.notMatch(lines[0], /secret-1|secret-2/, 'neither secret is written')
  t.match(lines[0], /"accept":"application\/json"/, 'other headers are')
})
