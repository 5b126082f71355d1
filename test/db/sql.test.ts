/** The tagged template every hand-written statement is built with (src/db/sql/sql.ts). */
import t from 'tap'
import { sql } from '../../src/db/sql/sql.js'

t.test('sql tagged template: values become parameters, fragments nest', async t => {
  const where = sql`status = ${'queued'}`
  t.same(sql`SELECT * FROM jobs WHERE id = ${'x'} AND ${where} LIMIT ${5}`.toQuery(), {
    text: 'SELECT * FROM jobs WHERE id = $1 AND status = $2 LIMIT $3',
    values: ['x', 'queued', 5],
  })
  t.same(sql`SELECT ${"'; DROP TABLE jobs; --"}`.toQuery().values, ["'; DROP TABLE jobs; --"])
})
