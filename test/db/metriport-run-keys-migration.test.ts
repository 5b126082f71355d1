/**
 * The hand-written migration that moves Metriport jobs parked before run keys existed to their run key: the key
 * it writes must be exactly the one the webhook route computes (runKey), or their deliveries would never match.
 */
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { runKey } from '../../src/upstreams/metriport/webhook.js'
import { sql, testDatabase } from '../helpers/database.js'

const migration = new URL('../../prisma/migrations/20261207070000_metriport_run_keys/migration.sql', import.meta.url)

t.test('parked Metriport jobs move to the run key the webhook computes; nothing else changes', async t => {
  const url = await testDatabase(t)
  const insert = (upstream: string, waiting: string | null, params: object) => sql<{ id: string }>(url,
    'INSERT INTO jobs (id, client_id, upstream, resource, params, status, waiting_for) VALUES (gen_random_uuid(), \'alpha\', $1, \'r\', $2, \'running\', $3) RETURNING id',
    [upstream, JSON.stringify(params), waiting])
  const patient = 'pat "ünï" \\ 01'
  const [old] = await insert('metriport', 'req-0001-abc', { patientId: patient })
  const [current] = await insert('metriport', runKey('req-2', 'p2'), { patientId: 'p2' })
  const [other] = await insert('drchrono', 'something', { patient: 5 })
  const [idle] = await insert('metriport', null, { patientId: 'p3' })
  await sql(url, await readFile(migration, 'utf8'))
  const keyOf = async (id: string | undefined) => (await sql<{ waiting_for: string | null }>(url, 'SELECT waiting_for FROM jobs WHERE id = $1', [id]))[0]?.waiting_for
  t.equal(await keyOf(old?.id), runKey('req-0001-abc', patient), 'an old key becomes the run key, character for character')
  t.equal(await keyOf(current?.id), runKey('req-2', 'p2'), 'a run key stays as it is')
  t.equal(await keyOf(other?.id), 'something', 'other upstreams are untouched')
  t.equal(await keyOf(idle?.id), null)
})
