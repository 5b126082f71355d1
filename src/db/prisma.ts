/**
 * The Prisma client on Postgres through the pg driver adapter (Prisma 7's rust-free client: no binary).
 */
import { PrismaPg } from '@prisma/adapter-pg'
import type pg from 'pg'
import { PrismaClient } from '../generated/prisma/client.js'

/**
 * A PrismaClient from a connection URL (the adapter then owns its pool) or from a pool the caller shares
 * with hand-written SQL and ends itself, after `$disconnect()`.
 */
export function createPrisma (connection: string | pg.Pool): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg(typeof connection === 'string' ? { connectionString: connection } : connection) })
}
