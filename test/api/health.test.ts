import t from 'tap'
import pg from 'pg'
import { startGateway } from '../helpers/gateway.js'

t.test('health: live always, ready only with the database migrated', async t => {
  const gw = await startGateway(t, { startWorkers: false })
  t.equal((await gw.request('/health/live', { key: null })).status, 200)
  const ready = await gw.request('/health/ready', { key: null })
  t.equal(ready.status, 200)
  t.same(await ready.json(), { status: 'ok', database: 'ok', migrations: 'applied' })

  // Pretend the last migration was never applied: readiness must say so.
  const client = new pg.Client({ connectionString: gw.databaseUrl })
  await client.connect()
  t.teardown(() => client.end())
  await client.query('UPDATE _prisma_migrations SET migration_name = migration_name || \'_gone\' WHERE migration_name = (SELECT max(migration_name) FROM _prisma_migrations)')
  const notReady = await gw.request('/health/ready', { key: null })
  t.equal(notReady.status, 503)
  t.match(await notReady.json(), { status: 503, detail: /migrations pending/ })
  t.equal(notReady.headers.get('content-type'), 'application/problem+json; charset=utf-8')
})
