/**
 * The database for the rest of the app: one pg pool, shared by Prisma (through its pg adapter) and by the
 * hand-written SQL of db/sql, closed when the app closes.
 */
import { PrismaPg } from '@prisma/adapter-pg'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import pg from 'pg'
import { PrismaClient } from '../generated/prisma/client.js'
import { migrationsStatus } from './migrate.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: {
      pool: pg.Pool
      prisma: PrismaClient
      /** Null when ready, else why not (database down, migrations pending). */
      readiness (): Promise<string | null>
    }
  }
}

export const dbPlugin = fp(async (app: FastifyInstance, opts: { databaseUrl: string, poolSize?: number }) => {
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolSize ?? 10 })
  // An idle client that loses its server (a database restart) must not crash the process; the pool replaces it.
  pool.on('error', err => app.log.warn({ err: err.message }, 'idle database connection lost'))
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) })
  app.decorate('db', {
    pool,
    prisma,
    async readiness () {
      try {
        const status = await migrationsStatus(pool)
        return status.upToDate ? null : `migrations pending: ${status.pending.join(', ')}`
      } catch {
        return 'the database does not answer'
      }
    },
  })
  app.addHook('onClose', async () => {
    await prisma.$disconnect()
    await pool.end()
  })
}, { name: 'db' })
