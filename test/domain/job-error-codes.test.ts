import { readFile } from 'node:fs/promises'
import t from 'tap'
import { JOB_ERROR_CODES } from '../../src/domain/errors.js'
import { codeForStatus } from '../../src/upstreams/status-codes.js'

t.test('a final status means the same code whichever upstream sent it', async t => {
  const expected: Array<[number, string]> = [
    [401, 'upstream_unauthorized'], [403, 'upstream_unauthorized'],
    [404, 'upstream_not_found'], [410, 'upstream_not_found'],
    [429, 'upstream_rate_limited'],
    [400, 'upstream_rejected'], [409, 'upstream_rejected'], [422, 'upstream_rejected'],
    [500, 'upstream_failed'], [501, 'upstream_failed'],
    [502, 'upstream_unavailable'], [503, 'upstream_unavailable'], [504, 'upstream_unavailable'],
    [200, 'invalid_upstream_response'], [204, 'invalid_upstream_response'], [302, 'invalid_upstream_response'], [101, 'invalid_upstream_response'],
  ]
  for (const [status, code] of expected) t.equal(codeForStatus(status), code, String(status))
})

t.test('docs/API.md documents exactly the codes the code has, with the same meaning', async t => {
  const readme = await readFile(new URL('../../docs/API.md', import.meta.url), 'utf8')
  const rows = [...readme.matchAll(/^\| `([a-z_]+)` \| (.+) \|$/gm)]
    .filter(([, code]) => code !== undefined && (code.startsWith('upstream_') || code.endsWith('_error') || code.startsWith('invalid_upstream')))
    .map(([, code, when]) => [code, when])
  t.same(Object.fromEntries(rows), JOB_ERROR_CODES)
})
