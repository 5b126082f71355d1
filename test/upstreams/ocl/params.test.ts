import t from 'tap'
import { ocl } from '../../../src/upstreams/ocl/definition.js'
import { parseInstant } from '../../../src/lib/values.js'
import { oclParams } from '../../../src/upstreams/ocl/params.js'

const target = { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL' }
const issues = (resource: 'export' | 'changes', params: unknown): string[] => {
  const parsed = oclParams[resource].safeParse(params)
  return parsed.success ? [] : parsed.error.issues.map(i => i.path.join('.') || i.code)
}

t.test('export: defaults, strictness, safe path segments', async t => {
  t.same(oclParams.export.parse(target), { ...target, includeRetired: false, version: 'latest' })
  t.same(oclParams.export.parse({ ...target, ownerType: 'users', owner: 'jane.doe@x', version: 'v2.2_b-1' }).version, 'v2.2_b-1')
  t.same(issues('export', { ...target, updatedSince: '2024-01-01' }), ['unrecognized_keys'], 'updatedSince is for changes only')
  t.same(issues('export', { ...target, ownerType: 'teams' }), ['ownerType'])
  t.same(issues('export', { ...target, source: '..' }), ['source'], '".." would leave the source\'s path')
  t.same(issues('export', { ...target, version: 'v1/../x' }), ['version'])
  t.same(issues('export', { ...target, includeRetired: 'true' }), ['includeRetired'], 'a JSON boolean, not a string')
  t.same(issues('export', { owner: 'CIEL' }), ['ownerType', 'source'])
})

t.test('changes: updatedSince required, a date or an ISO datetime; no version', async t => {
  t.same(oclParams.changes.parse({ ...target, updatedSince: '2024-02-29' }), { ...target, updatedSince: '2024-02-29', includeRetired: false })
  for (const ok of ['2024-06-01T00:00:00Z', '2024-06-01T10:20', '2024-06-01T10:20:30.123456+05:30']) t.same(issues('changes', { ...target, updatedSince: ok }), [], ok)
  for (const bad of ['2023-02-29', '2024-06-01 10:20', 'yesterday', '2024-06-01T25:00:00Z']) t.same(issues('changes', { ...target, updatedSince: bad }), ['updatedSince'], bad)
  t.same(issues('changes', target), ['updatedSince'])
  t.same(issues('changes', { ...target, updatedSince: '2024-01-01', version: 'v1' }), ['unrecognized_keys'])
  t.equal(parseInstant('2024-06-01T10:20'), Date.parse('2024-06-01T10:20:00Z'), 'no offset: read as UTC')
})

t.test('configuration: neither OCL_BASE_URL nor OCL_TOKEN = not configured; either one = live', async t => {
  const settings = (env: Record<string, string>) => ocl.settingsFromEnv(ocl.env.parse(env))
  t.equal(settings({}), null, 'nothing set: sandbox (or unconfigured)')
  t.equal(settings({ OCL_TOKEN: '', OCL_BASE_URL: '' }), null, 'empty means unset')
  t.match(settings({ OCL_TOKEN: 'secret' }), { baseUrl: 'https://api.openconceptlab.org', token: 'secret', pollInitialMs: 5000, pollMaxMs: 60_000, maxPolls: 90 })
  t.match(settings({ OCL_BASE_URL: 'https://ocl.example.org/api' }), { baseUrl: 'https://ocl.example.org/api', token: undefined }, 'anonymous access to a chosen server')
  t.match(settings({ OCL_TOKEN: 'x', OCL_EXPORT_POLL_SECONDS: '0.05', OCL_EXPORT_MAX_POLLS: '7' }), { pollInitialMs: 50, maxPolls: 7 })
  t.throws(() => ocl.env.parse({ OCL_BASE_URL: 'ftp://x' }))
  t.throws(() => ocl.env.parse({ OCL_EXPORT_MAX_POLLS: '0' }))
  t.same(Object.keys(ocl.resources), ['export', 'changes'])
  for (const [name, spec] of Object.entries(ocl.resources)) t.ok(spec.params.safeParse(spec.example).success, `the ${name} example is valid`)
})
