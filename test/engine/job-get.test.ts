/**
 * JobService.get reads a job with one SQL statement instead of Prisma: every field must come back as Prisma gave
 * it (Dates, Json columns, nullable ints, the float percent, the status enum), for every kind of row, but the
 * status, which is the status as read (a completed job past expiresAt reads expired), the fields that may hold
 * patient data, which read null from expiresAt on, and msToExpiry beside it.
 */
import { randomUUID } from 'node:crypto'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import t from 'tap'
import { PrismaClient } from '../../src/generated/prisma/client.js'
import { findClientJob } from '../../src/db/sql/job-reads.js'
import { testDatabase } from '../helpers/database.js'

t.test('findClientJob returns what prisma.job.findFirst returns, but the payload and checkpoint', async t => {
  const pool = new pg.Pool({ connectionString: await testDatabase(t) })
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) })
  t.teardown(async () => {
    await prisma.$disconnect()
    await pool.end()
  })

  const insert = async (columns: Record<string, unknown>): Promise<string> => {
    const row = { id: randomUUID(), client_id: 'alpha', upstream: 'drchrono', resource: 'appointments', params: '{}', request_hash: randomUUID(), ...columns }
    const names = Object.keys(row)
    await pool.query(`INSERT INTO jobs (${names.join(', ')}) VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')})`, Object.values(row))
    return row.id
  }

  // What each row reads as: the stored status, but for the completed job whose expiresAt (2024) has passed.
  const rows: Record<string, [string, string]> = {
    'queued, defaults only': [await insert({}), 'queued'],
    'completed, past expiresAt': [await insert({
      status: 'completed',
      params: JSON.stringify({ since: '2024-02-01', verbose: true, doctor: 7 }),
      checkpoint: JSON.stringify({ pages: 3, done: [1, 2, 3] }),
      records: 2500,
      pages_done: 3,
      pages_total: 3,
      percent: 100,
      upstream_info: JSON.stringify({ lastUpdated: '2024-01-01T00:00:00Z', nested: { list: [1, 'two', null] } }),
      attempts: 1,
      started_at: '2024-03-01T10:00:00.123Z',
      finished_at: '2024-03-01T10:05:00.456Z',
      expires_at: '2024-03-01T11:05:00.456Z',
    }), 'expired'],
    'completed, not expired yet': [await insert({ status: 'completed', finished_at: new Date(), expires_at: new Date(Date.now() + 3_600_000) }), 'completed'],
    'failed write job': [await insert({
      status: 'failed',
      upstream: 'clinia',
      resource: 'resources',
      payload: JSON.stringify({ operations: [{ action: 'CREATE', body: { name: 'ü 😀 "quoted" \\ \n' } }] }),
      records: 4,
      pages_done: 1,
      percent: 33.3333,
      succeeded: 3,
      failed: 1,
      error_code: 'upstream_rejected',
      error_message: 'refused: 1 of 4',
      upstream_status: 422,
      attempts: 2,
      finished_at: new Date(),
      expires_at: new Date(Date.now() + 3_600_000),
    }), 'failed'],
    'failed, past expiresAt': [await insert({ status: 'failed', error_code: 'upstream_unavailable', finished_at: new Date(0), expires_at: new Date(0) }), 'failed'],
    'running, leased, parked': [await insert({
      status: 'running',
      upstream: 'metriport',
      resource: 'document-download-urls',
      waiting_for: 'req-1',
      lease_owner: 'worker-1',
      lease_expires_at: new Date(Date.now() + 30_000),
      run_after: '2020-01-01T00:00:00Z',
      started_at: new Date(),
      percent: 0.1,
      upstream_info: 'null',
      // eslint-disable-next-line @typescript-eslint/no-loss-of-precision -- a number past 2^53, as an upstream may send
      checkpoint: JSON.stringify({ big: 12345678901234567890, small: 1.5e-7, text: 'x' }),
    }), 'running'],
    'cancelled, expired': [await insert({ status: 'cancelled', finished_at: new Date(), expires_at: new Date() }), 'cancelled'],
    expired: [await insert({ status: 'expired', percent: 100, expires_at: new Date(0) }), 'expired'],
  }

  for (const [what, [id, status]] of Object.entries(rows)) {
    const found = await prisma.job.findFirst({ where: { id, clientId: 'alpha' } })
    if (found === null) {
      t.fail(`${what}: not found by Prisma`)
      continue
    }
    // Everything but what only the worker reads (a write job's payload can be tens of MB), the sweeper's own
    // bookkeeping and the callback deliverer's. From expiresAt on, what may hold patient data reads null, whatever
    // the row still holds.
    const {
      payload: _payload, checkpoint: _checkpoint, erasedAt: _erasedAt, purgePending: _purgePending,
      callbackUrl: _callbackUrl, callbackNextAt: _callbackNextAt, callbackLeaseOwner: _callbackLeaseOwner, ...stored
    } = found
    const pastExpiry = stored.expiresAt !== null && stored.expiresAt.getTime() <= Date.now()
    const viaPrisma = pastExpiry ? { ...stored, params: null, upstreamInfo: null, errorMessage: null } : stored
    for (const [how, asked] of [['', id], [', id in capitals', id.toUpperCase()]]) {
      const read = await findClientJob(pool, 'alpha', asked as string)
      const { msToExpiry, ...fields } = read ?? { msToExpiry: undefined }
      t.strictSame(fields, { ...viaPrisma, status }, `${what}${how}: reads ${status}`)
      const expiresAt = viaPrisma.expiresAt
      if (expiresAt === null) t.equal(msToExpiry, null, `${what}${how}: no expiresAt, no msToExpiry`)
      // Against this process's clock, which shares the database's machine here.
      else t.ok(Math.abs((msToExpiry as number) - (expiresAt.getTime() - Date.now())) < 5_000, `${what}${how}: msToExpiry counts to expiresAt`)
    }
    t.equal(await findClientJob(pool, 'beta', id), null, `${what}: another client's job is null`)
  }
  t.equal(await findClientJob(pool, 'alpha', randomUUID()), null, 'a missing job is null')
})
