import t from 'tap'
import { drchrono } from '../../../src/upstreams/drchrono/definition.js'
import { DRCHRONO_FILTERS, DRCHRONO_RESOURCES, drchronoParams } from '../../../src/upstreams/drchrono/params.js'

const ok = (resource: keyof typeof drchronoParams, params: unknown) => drchronoParams[resource].safeParse(params).success

t.test('every resource has a strict schema with page_size defaulting to 1000', async t => {
  t.same(Object.keys(drchrono.resources).sort(), [...DRCHRONO_RESOURCES].sort())
  for (const resource of DRCHRONO_RESOURCES) {
    t.same(drchronoParams[resource].parse({}), { page_size: 1000 }, resource)
    t.notOk(ok(resource, { nonsense: 1 }), `${resource}: unknown key rejected`)
    t.notOk(ok(resource, { page: 2 }), `${resource}: page is the adapter's business, not a param`)
    t.ok(drchrono.resources[resource]?.description, `${resource} has a description`)
  }
  t.same(drchrono.resources.appointments?.example, { since: '2024-02-01' })
  t.ok(ok('appointments', drchrono.resources.appointments?.example), 'the example is valid')
})

t.test('dates: calendar days only, since also takes a datetime, ranges ordered', async t => {
  t.ok(ok('appointments', { since: '2024-02-01' }))
  t.ok(ok('appointments', { since: '2024-02-01T10:30:00Z' }))
  t.ok(ok('appointments', { since: '2024-02-01T10:30:00.123+02:00' }))
  t.notOk(ok('appointments', { since: '2024-02-30' }), 'no 30 February')
  t.notOk(ok('appointments', { since: '02/01/2024' }))
  t.notOk(ok('appointments', { since: '2024-02-01 10:30' }))
  t.ok(ok('appointments', { date: '2024-02-29' }), 'a leap day')
  t.notOk(ok('appointments', { date: '2023-02-29' }))
  t.notOk(ok('appointments', { date: '2024-02-01T00:00:00Z' }), 'date is a day, not a datetime')
  t.ok(ok('appointments', { date_range: '2024-01-01/2024-03-31' }))
  t.notOk(ok('appointments', { date_range: '2024-03-31/2024-01-01' }), 'reversed range')
  t.notOk(ok('appointments', { date_range: '2024-01-01' }))
  t.ok(ok('line_items', { posted_date: '2024-01-05' }))
  t.ok(ok('line_items', { service_date: '2024-01-01/2024-01-31' }))
  t.ok(ok('eligibility_checks', { appointment_date_range: '2024-01-01/2024-01-31' }))
  t.notOk(ok('patients', { date_of_birth: '1980-13-01' }))
})

t.test('page_size bounds: 1..1000, clinical_note_field_values up to 20000', async t => {
  t.notOk(ok('appointments', { page_size: 0 }))
  t.ok(ok('appointments', { page_size: 1 }))
  t.ok(ok('appointments', { page_size: 1000 }))
  t.notOk(ok('appointments', { page_size: 1001 }))
  t.notOk(ok('appointments', { page_size: 10.5 }))
  t.notOk(ok('appointments', { page_size: '100' }), 'a JSON number, not a string')
  t.ok(ok('clinical_note_field_values', { page_size: 20000 }))
  t.notOk(ok('clinical_note_field_values', { page_size: 20001 }))
})

t.test('types: JSON booleans, integer ids, order_by per resource', async t => {
  t.ok(ok('appointments', { verbose: true, show_archived: false }))
  t.notOk(ok('appointments', { verbose: 'true' }))
  t.ok(ok('appointments', { doctor: 101, office: 201, patient: 50000001, status: 'Complete' }))
  t.notOk(ok('appointments', { doctor: '101' }))
  t.notOk(ok('appointments', { doctor: -1 }))
  t.ok(ok('line_items', { appointment: '200001234' }), 'appointment ids are strings')
  t.ok(ok('line_items', { appointment: 200001234 }), 'or numbers')
  t.ok(ok('appointments', { order_by: 'scheduled_time' }))
  t.ok(ok('appointments', { order_by: 'updated_at' }))
  t.notOk(ok('appointments', { order_by: 'id' }), 'appointments default to scheduled_time')
  t.ok(ok('patients', { order_by: 'id' }))
  t.notOk(ok('patients', { order_by: 'last_name' }))
  t.notOk(ok('patients', { first_name: '' }))
  t.notOk(ok('eligibility_checks', { since: '2024-01-01' }), 'eligibility checks document no since filter')
})

t.test('every filter carries a description and a valid example (they show in the OpenAPI document)', async t => {
  for (const resource of DRCHRONO_RESOURCES) {
    for (const [name, spec] of Object.entries(DRCHRONO_FILTERS[resource])) {
      t.ok(drchronoParams[resource].shape[name]?.description, `${resource}.${name} described`)
      t.ok(ok(resource, { [name]: spec.example }), `${resource}.${name} example ${JSON.stringify(spec.example)} is valid`)
    }
  }
})

t.test('env: no access token means unconfigured; refresh credentials come together', async t => {
  const env = (vars: Record<string, string>) => drchrono.env.safeParse(vars)
  const bare = env({})
  t.ok(bare.success)
  t.equal(bare.success && drchrono.settingsFromEnv(bare.data), null)
  const live = env({ DRCHRONO_ACCESS_TOKEN: 'tok', DRCHRONO_PAGE_CONCURRENCY: '2', DRCHRONO_REFRESH_TOKEN: '' })
  t.match(live.success && drchrono.settingsFromEnv(live.data), {
    baseUrl: 'https://app.drchrono.com', accessToken: 'tok', pageConcurrency: 2, refreshToken: undefined,
  })
  t.notOk(env({ DRCHRONO_ACCESS_TOKEN: 'tok', DRCHRONO_REFRESH_TOKEN: 'r' }).success, 'refresh token without client credentials')
  t.notOk(env({ DRCHRONO_PAGE_CONCURRENCY: 'many' }).success)
  t.notOk(env({ DRCHRONO_BASE_URL: 'ftp://x' }).success)
  t.match(drchrono.simulator.sandboxSettings('http://127.0.0.1:1/drchrono', { accessToken: 'a', refreshToken: 'r', clientId: 'c', clientSecret: 's' }), { baseUrl: 'http://127.0.0.1:1/drchrono', accessToken: 'a', refreshToken: 'r' })
})
