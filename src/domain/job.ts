/** A job as the layers hand it to each other: the row's shape (the Prisma model), less what only a worker reads. */
import type { Job } from '../generated/prisma/client.js'

/**
 * A job without what only its worker reads (the payload, up to 100 000 write operations, and the checkpoint) and
 * what only the callback deliverer reads (the callback's URL, next attempt time and lease).
 */
export type JobSummary = Omit<Job, 'payload' | 'checkpoint' | 'callbackUrl' | 'callbackNextAt' | 'callbackLeaseOwner'>

/** A job as read, with the milliseconds left until its `expiresAt` (0 or less once past; null while it has none). */
export interface JobRead extends JobSummary { msToExpiry: number | null }
