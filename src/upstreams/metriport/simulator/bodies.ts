/**
 * The bodies the Metriport simulator sends: the start answer and the `medical.document-bulk-download-urls`
 * webhook, in the documented shape, or with unknown extra fields everywhere (the `extraFields` setting).
 *
 * Metriport adds fields to its payloads over time, and its webhook documentation lists the current ones only: a
 * receiver must take fields it does not know in its stride. The extra fields are written as raw JSON text in forms
 * a re-serialising reader would change (`\u00e9` escapes, `1.50`, `1e3`, braces inside strings) and include keys
 * that also name the message's arrays at other depths (`patients`, `documents`), so that a receiver that does not
 * keep the exact bytes, or reads a key at the wrong depth, is caught.
 */
import { DOCUMENT_URLS_TYPE } from '../webhook.js'
import { patientDocuments, patientIndex, signedUrl } from './documents.js'

/** One run's facts, as the body needs them. */
export interface RunFacts {
  requestId: string
  patientId: string
  metadata: Record<string, string> | undefined
  failed: boolean
}

/** Extra fields per place, as raw JSON members. */
const EXTRA = {
  top: '"version":"2025-06","links":{"patients":[{"href":"https://api.metriport.com/medical/v1/patient"}]}',
  meta: '"attempt":1,"source":{"name":"caf\\u00e9 \\"bulk\\"","region":"us-west-1"}',
  patientBefore: '"cxId":"0195f3c2-0000-7000-8000-000000000001","facilityIds":["fac-1"],"extension":{"documents":[{"id":"not-a-document"}]}',
  patientAfter: '"summary":{"documents":2.50,"bytes":1e3}',
  document: '"checksum":"sha256-Y2hlY2tzdW0=","custodian":{"name":"Caf\\u00e9 \\"Nord\\" & Co","oid":"2.16.840.1.113883"},"pages":1.50,"retentionDays":1e3,"tags":["a}b","{c"]',
  start: '"cxId":"0195f3c2-0000-7000-8000-000000000001","createdAt":"2025-06-01T00:00:00.000Z"',
} as const

/** `{...}` text of `value` with `extra` members added last (or first, with `first`). */
function object (value: Record<string, unknown>, extra: string | null, first = false): string {
  const text = JSON.stringify(value)
  if (extra === null) return text
  const inner = text.slice(1, -1)
  if (inner === '') return `{${extra}}`
  return first ? `{${extra},${inner}}` : `{${inner},${extra}}`
}

/** The start endpoint's answer. */
export function startBody (status: string, requestId: string, extraFields: boolean): string {
  return object({ status, requestId }, extraFields ? EXTRA.start : null)
}

/** The webhook message ending a run, as text: the exact bytes that are signed and sent. */
export function resultBody (run: RunFacts, messageId: string, opts: { seed: number, patientCount: number, now: Date, extraFields: boolean }): string {
  const extra = (key: keyof typeof EXTRA): string | null => opts.extraFields ? EXTRA[key] : null
  const index = patientIndex(run.patientId, opts.patientCount)
  const documents = run.failed || index < 0
    ? undefined
    : patientDocuments(opts.seed, index).map(d => object({ ...d, url: signedUrl(run.patientId, d.id, run.requestId, opts.now) }, extra('document')))
  const meta = object({
    messageId, requestId: run.requestId, when: opts.now.toISOString(), type: DOCUMENT_URLS_TYPE, ...(run.metadata !== undefined ? { data: run.metadata } : {}),
  }, extra('meta'))
  const head = object({ patientId: run.patientId, externalId: `ext-${index + 1}`, status: run.failed ? 'failed' : 'completed' }, extra('patientBefore'))
  const patient = documents === undefined ? head : object({}, [head.slice(1, -1), `"documents":[${documents.join(',')}]`, extra('patientAfter')].filter(p => p !== null).join(','))
  return object({}, [extra('top'), `"meta":${meta}`, `"patients":[${patient}]`].filter(p => p !== null).join(','))
}
