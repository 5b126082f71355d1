/** Log hygiene derived from the registry: each upstream's secret headers are redacted without editing the logger. */
import t from 'tap'
import { redactPaths } from '../../src/logger.js'
import { registry } from '../../src/upstreams/registry.js'

t.test('every registered upstream\'s secret and signature headers are redacted', async t => {
  const paths = redactPaths()
  for (const upstream of registry.upstreams) {
    for (const header of upstream.secretHeaders) t.ok(paths.includes(`req.headers["${header}"]`), `${upstream.name}: ${header}`)
    if (upstream.webhook !== undefined) t.ok(paths.includes(`req.headers["${upstream.webhook.signatureHeader.name}"]`), `${upstream.name}: signature`)
  }
  t.ok(paths.includes('req.headers["authorization"]'))
})
