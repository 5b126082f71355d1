/** The params of ledger's one resource, `entries`. */
import { z } from 'zod'
import { isDay } from '../../../../src/lib/values.js'

export const LEDGER_PAGE_MAX = 100

export const ledgerParams = {
  entries: z.strictObject({
    since: z.string().refine(isDay, 'expected a day, YYYY-MM-DD').optional().describe('Entries booked on or after this day'),
    limit: z.number().int().min(1).max(LEDGER_PAGE_MAX).default(50).describe('Entries per page'),
  }),
}

export type LedgerParams = z.output<typeof ledgerParams.entries>
