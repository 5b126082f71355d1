import t from 'tap'
import { loadConfig } from '../../../src/config.js'
import { ConfigError } from '../../../src/domain/errors.js'
import { cliniko } from '../../../src/upstreams/cliniko/definition.js'
import { CLINIKO_RESOURCES, FILTER_OPERATORS, clinikoParams, parseFilter } from '../../../src/upstreams/cliniko/params.js'
import { keyWithoutShard, shardOfKey } from '../../../src/upstreams/cliniko/env.js'

const ok = (params: unknown, resource: keyof typeof clinikoParams = 'patients') => clinikoParams[resource].safeParse(params).success

t.test('every resource and list variant has a strict schema with per_page defaulting to 100', async t => {
  t.same(Object.keys(cliniko.resources).sort(), [...CLINIKO_RESOURCES].sort())
  t.equal(CLINIKO_RESOURCES.length, 17)
  for (const resource of CLINIKO_RESOURCES) {
    t.same(clinikoParams[resource].parse({}), { per_page: 100 }, resource)
    t.notOk(ok({ nonsense: 1 }, resource), `${resource}: unknown key rejected`)
    t.notOk(ok({ page: 2 }, resource), `${resource}: page is the adapter's business`)
    t.ok(cliniko.resources[resource]?.description, `${resource} has a description`)
    t.ok(ok(cliniko.resources[resource]?.example, resource), `${resource}: its example is valid`)
  }
  t.same(cliniko.resources.patients?.example, { q: ['updated_at:>2024-01-01T00:00:00Z'] })
  const shape = clinikoParams.patients.shape as Record<string, { description?: string }>
  for (const key of ['q', 'sort', 'order', 'per_page']) t.ok(shape[key]?.description, `${key} is described`)
})

t.test('q: field:OPvalue with a documented operator', async t => {
  for (const filter of [
    'updated_at:>2024-01-01T00:00:00Z', 'updated_at:>=2024-01-01T00:00:00Z', 'starts_at:<2024-04-04T20:37:17Z',
    'starts_at:<=2024-04-04T20:37:17Z', 'id:=1,2,3', 'practitioner_id:!=5', 'last_name:~son', 'last_name:~~ja%on%',
    'archived_at:?', 'archived_at:!?', 'archived_at:*', 'date_of_birth:=****-05-**', 'first_name:=a:b',
  ]) t.ok(ok({ q: [filter] }), filter)
  for (const [filter, why] of [
    ['updated_at>2024-01-01', 'no colon'],
    ['Updated_At:>2024-01-01', 'upper-case field'],
    ['last_name:!~son', '!~ is not a Cliniko operator'],
    ['last_name:^son', 'unknown operator'],
    ['last_name:=', 'no value'],
    ['archived_at:?yes', '? takes no value'],
    ['archived_at:*x', '* takes no value'],
    ['last_name:~a\u0000b', 'a control character'],
  ]) t.notOk(ok({ q: [filter] }), `${filter}: ${why}`)
  t.notOk(ok({ q: [] }), 'an empty list is a mistake, not "no filter"')
  t.notOk(ok({ q: 'updated_at:>2024-01-01T00:00:00Z' }), 'a list, not a string')
  t.notOk(ok({ q: Array.from({ length: 21 }, () => 'id:=1') }), 'at most 20 filters')
  t.same(parseFilter('last_name:~~ja%on%'), { field: 'last_name', op: '~~', value: 'ja%on%' }, '~~ is not ~ then ~')
  t.same(parseFilter('id:!?'), { field: 'id', op: '!?', value: '' })
  t.same([...FILTER_OPERATORS].sort(), ['!=', '!?', '*', '<', '<=', '=', '>', '>=', '?', '~', '~~'])
})

t.test('sort, order and per_page', async t => {
  t.ok(ok({ sort: 'updated_at' }))
  t.ok(ok({ sort: 'appointment_start,created_at:desc' }))
  t.ok(ok({ sort: 'last_name:asc,first_name' }))
  t.notOk(ok({ sort: 'updated_at:down' }))
  t.notOk(ok({ sort: 'a,,b' }))
  t.notOk(ok({ sort: '-updated_at' }))
  t.ok(ok({ order: 'desc' }))
  t.notOk(ok({ order: 'DESC' }))
  t.ok(ok({ per_page: 1 }))
  t.ok(ok({ per_page: 100 }))
  t.notOk(ok({ per_page: 0 }))
  t.notOk(ok({ per_page: 101 }), 'Cliniko serves at most 100 per page')
  t.notOk(ok({ per_page: '50' }), 'a JSON number')
})

t.test('keys and shards', async t => {
  t.equal(shardOfKey('MS0xLWl4SzYY-uk1'), 'uk1')
  t.equal(shardOfKey('MS0xLWl4SzYY-AU2'), 'au2')
  t.equal(shardOfKey('MS0xLWl4SzYY'), 'au1', 'keys made before sharding belong to au1')
  t.equal(shardOfKey('MS0xLWl4SzYY-nope'), null)
  t.equal(keyWithoutShard('MS0xLWl4SzYY-uk1'), 'MS0xLWl4SzYY')
  t.equal(keyWithoutShard('MS0xLWl4SzYY'), 'MS0xLWl4SzYY')
})

t.test('env: the key picks the shard; a User-Agent is required with it; failures name variables, not the key', async t => {
  const env = (vars: Record<string, string>) => cliniko.env.safeParse(vars)
  const bare = env({})
  t.ok(bare.success)
  t.equal(bare.success && cliniko.settingsFromEnv(bare.data), null, 'no key: not configured')
  const empty = env({ CLINIKO_API_KEY: '' })
  t.equal(empty.success && cliniko.settingsFromEnv(empty.data), null, 'an empty key is unset')

  const ua = 'Acme gateway (it@acme.example)'
  const uk = env({ CLINIKO_API_KEY: 'secretKEY-uk1', CLINIKO_USER_AGENT: ua })
  t.same(uk.success && cliniko.settingsFromEnv(uk.data), {
    baseUrl: 'https://api.uk1.cliniko.com/v1', apiKey: 'secretKEY-uk1', userAgent: ua, requestsPerMinute: 200,
  })
  const old = env({ CLINIKO_API_KEY: 'secretKEY', CLINIKO_USER_AGENT: ua, CLINIKO_REQUESTS_PER_MINUTE: '120' })
  t.match(old.success && cliniko.settingsFromEnv(old.data), { baseUrl: 'https://api.au1.cliniko.com/v1', requestsPerMinute: 120 })
  const proxied = env({ CLINIKO_API_KEY: 'secret-KEY', CLINIKO_USER_AGENT: ua, CLINIKO_BASE_URL: 'http://127.0.0.1:9/v1' })
  t.match(proxied.success && cliniko.settingsFromEnv(proxied.data), { baseUrl: 'http://127.0.0.1:9/v1' }, 'the override wins, whatever the suffix')

  const problems = (vars: Record<string, string>) => {
    try {
      loadConfig({ NODE_ENV: 'test', ...vars })
      return ''
    } catch (err) {
      t.ok(err instanceof ConfigError)
      return (err as Error).message
    }
  }
  t.match(problems({ CLINIKO_API_KEY: 'secretKEY-au2' }), /CLINIKO_USER_AGENT: required when CLINIKO_API_KEY is set/)
  t.match(problems({ CLINIKO_API_KEY: 'secretKEY-au2', CLINIKO_USER_AGENT: 'curl/8.0' }), /CLINIKO_USER_AGENT: expected "Name \(email\)"/)
  const badShard = problems({ CLINIKO_API_KEY: 'secretKEY-oops', CLINIKO_USER_AGENT: ua })
  t.match(badShard, /CLINIKO_API_KEY: does not end in a shard/)
  t.notMatch(badShard, /secretKEY/, 'the key is never in the message')
  t.match(problems({ CLINIKO_REQUESTS_PER_MINUTE: 'lots' }), /CLINIKO_REQUESTS_PER_MINUTE/)
  t.match(problems({ CLINIKO_BASE_URL: 'ftp://x' }), /CLINIKO_BASE_URL/)
  t.equal(problems({ CLINIKO_API_KEY: 'secretKEY-au2', CLINIKO_USER_AGENT: ua }), '', 'a complete configuration loads')

  t.match(cliniko.simulator.sandboxSettings('http://127.0.0.1:1/cliniko', { apiKey: 'drawnkey' }), {
    baseUrl: 'http://127.0.0.1:1/cliniko/v1', apiKey: 'drawnkey-au1', userAgent: String, requestsPerMinute: 200,
  })
})
