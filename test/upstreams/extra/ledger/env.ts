/** ledger's configuration: where it is and the key that opens it. */
import { z } from 'zod'
import { optionalEnv } from '../../../../src/lib/env.js'

export interface LedgerSettings { baseUrl: string, key: string }

export const ledgerEnv = z.object({
  LEDGER_BASE_URL: optionalEnv(z.url({ protocol: /^https?$/ })).describe('The ledger API root. Unset = ledger is not configured'),
  LEDGER_KEY: optionalEnv(z.string().min(8)).describe('Required with LEDGER_BASE_URL: the key sent as X-Ledger-Key'),
}).superRefine((e, ctx) => {
  if (e.LEDGER_BASE_URL !== undefined && e.LEDGER_KEY === undefined) {
    ctx.addIssue({ code: 'custom', path: ['LEDGER_KEY'], message: 'required when LEDGER_BASE_URL is set' })
  }
})

export type LedgerEnv = z.output<typeof ledgerEnv>

export function ledgerSettingsFromEnv (e: LedgerEnv): LedgerSettings | null {
  return e.LEDGER_BASE_URL === undefined || e.LEDGER_KEY === undefined ? null : { baseUrl: e.LEDGER_BASE_URL, key: e.LEDGER_KEY }
}
