/**
 * OCL job params: which source (owner type, owner, source), which version for an export, and the
 * `updatedSince` / `includeRetired` filters of a changes job. One strict zod schema per resource; the
 * simulator reads its query strings with the same patterns, so the two cannot disagree.
 */
import { z } from 'zod'
import { parseInstant } from '../../lib/values.js'

export const OCL_RESOURCES = ['export', 'changes'] as const
/** An OCL resource a job can read. */
export type OclResource = typeof OCL_RESOURCES[number]

/** OCL's mnemonic pattern for owners, sources and versions (its NAMESPACE_REGEX). */
export const MNEMONIC = /^[a-zA-Z0-9\-._@]{1,100}$/

/**
 * A mnemonic that is safe as one URL path segment. "." and ".." match OCL's pattern but a URL parser
 * would resolve them away (`/orgs/../sources/`), sending the request to a different endpoint.
 */
export function isMnemonic (value: string): boolean {
  return MNEMONIC.test(value) && !/^\.+$/.test(value)
}

const mnemonic = (what: string, example: string) => z.string()
  // abort: a value that fails the pattern gets one message, not the refinement's as well.
  .regex(MNEMONIC, { error: `expected an OCL ${what} id (letters, digits, - . _ @)`, abort: true })
  .refine(isMnemonic, `"." and ".." are not ${what} ids`)
  .meta({ description: `The ${what}'s id (mnemonic) in OCL, as in its URL.`, example })

const target = {
  ownerType: z.enum(['orgs', 'users'])
    .meta({ description: 'Whether the source belongs to an organisation (`orgs`) or a user (`users`).', example: 'orgs' }),
  owner: mnemonic('owner', 'CIEL'),
  source: mnemonic('source', 'CIEL'),
  includeRetired: z.boolean().default(false)
    .meta({ description: 'Also return retired concepts and mappings (a JSON boolean).', example: false }),
}

const exportParams = z.strictObject({
  ...target,
  version: mnemonic('source version', 'v2024-01-15').default('latest')
    .meta({ description: 'The source version to export; `latest` (the default) is the newest released version.', example: 'latest' }),
})

const changesParams = z.strictObject({
  ...target,
  updatedSince: z.string()
    .regex(/^\d{4}-\d{2}-\d{2}(T.+)?$/, { error: 'expected a date (YYYY-MM-DD) or an ISO 8601 datetime', abort: true })
    .refine(v => parseInstant(v) !== null, 'expected a date (YYYY-MM-DD) or an ISO 8601 datetime')
    .meta({ description: 'Only concepts and mappings updated at or after this date (YYYY-MM-DD) or ISO 8601 datetime, e.g. an export\'s lastUpdated.', example: '2024-06-01T00:00:00Z' }),
})

/** The strict params schema of each resource. */
export const oclParams: Record<OclResource, z.ZodObject> = { export: exportParams, changes: changesParams }

/** Validated params of an export job. */
export type OclExportParams = z.output<typeof exportParams>
/** Validated params of a changes job. */
export type OclChangesParams = z.output<typeof changesParams>
/** The source a job reads. */
export interface OclTarget { ownerType: 'orgs' | 'users', owner: string, source: string }
