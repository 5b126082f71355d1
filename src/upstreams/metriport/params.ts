/**
 * Metriport `document-download-urls` params. The metadata limits are Metriport's own (its open-source
 * `cxRequestMetadataSchema`: at most 50 pairs, keys 1..40 characters, values up to 500): refusing them at
 * `POST /jobs` gives the client a 400 with a pointer instead of a job that fails later with upstream_rejected.
 */
import { z } from 'zod'

/** The one resource: download URLs of every document of one patient, delivered by webhook. */
export const METRIPORT_RESOURCE = 'document-download-urls'

/** Metriport's limits on `metadata`, shared with the simulator so both refuse the same requests. */
export const METADATA_LIMITS = { maxPairs: 50, maxKeyLength: 40, maxValueLength: 500 } as const

/** Metriport's `metadata`: echoed back in the webhook's `meta.data`. */
export const metadataSchema = z.record(
  z.string().min(1).max(METADATA_LIMITS.maxKeyLength),
  z.string().max(METADATA_LIMITS.maxValueLength)
).refine(m => Object.keys(m).length <= METADATA_LIMITS.maxPairs, {
  message: `at most ${METADATA_LIMITS.maxPairs} key-value pairs`,
}).meta({ maxProperties: METADATA_LIMITS.maxPairs })
  .describe('Up to 50 string key-value pairs (keys up to 40 characters, values up to 500). Metriport echoes them back ' +
    'in its webhook (`meta.data`); they are not part of the records.')

/** Params of a `document-download-urls` job: strict, so unknown keys are errors. */
export const metriportParams = z.strictObject({
  patientId: z.string().min(1).max(200).describe('The Metriport patient id whose documents\' download URLs are generated.'),
  metadata: metadataSchema.optional(),
})

/** Validated params of a `document-download-urls` job. */
export type MetriportParams = z.output<typeof metriportParams>
