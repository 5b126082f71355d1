/**
 * Reads Metriport's webhook deliveries at `POST /webhooks/metriport`.
 *
 * Order matters: the signature is checked over the exact bytes first, then the body is parsed. A ping is
 * answered at once (Metriport wants `{"pong"}` within 2 s, so no database). A `medical.document-bulk-download-urls`
 * message finishes the job parked under its run, `meta.requestId` together with the patient it names (see
 * {@link runKey}), idempotently on `meta.messageId`; other types are acknowledged and ignored.
 *
 * Metriport does not retry: a non-200 answer disables the customer's webhook until someone retries it by hand.
 * So 4xx is kept for what cannot be routed at all (bad signature, not JSON, no messageId, requestId or single
 * patientId); a routable message whose content is wrong is acknowledged and fails its job with
 * invalid_upstream_response.
 *
 * Records: each document's JSON text exactly as Metriport sent it, with `patientId` and `urlExpiresAt` spliced
 * in before its closing brace (see {@link withAddedFields}). Nothing here logs: the URLs are credentials.
 *
 * Unknown fields: Metriport's documentation lists the current fields only, and Metriport adds fields over time. A
 * field this reader does not know is never an error, wherever it is. In a document it is part of the record,
 * unchanged (the record is "the upstream's document plus patientId and urlExpiresAt", as every upstream's records
 * are its own text); at the top level, in `meta` and in a patient it is ignored, and only the keys named here are
 * read, at their own depth (a `documents` key nested inside some other field of a patient is not its documents).
 */
import { extractArray } from '../json-records.js'
import { WebhookRejected } from '../../domain/errors.js'
import type { WebhookHandler, WebhookResult } from '../../contract/webhook.js'
import type { MetriportSettings } from './env.js'
import { SIGNATURE_FORMAT, SIGNATURE_HEADER, verifyWebhookSignature } from './signature.js'
import { isObject } from '../../lib/values.js'

/** The webhook type that carries the bulk download URLs. */
export const DOCUMENT_URLS_TYPE = 'medical.document-bulk-download-urls'

/**
 * The largest delivery accepted: 10 MiB. A document entry is at most ~2.5 KB (an S3 presigned URL with its
 * session token ~1.5 KB; id, fileName, description, type and the rest ~1 KB), and Metriport lists every document
 * of the patient in one message, so this holds ~4,000 documents, more than a long HIE history gives. A bigger
 * delivery would be refused (413) and, as Metriport does not retry, lost: raise it rather than cut it close.
 */
export const MAX_WEBHOOK_BYTES = 10 * 1024 * 1024

/**
 * What a job waits for and a delivery names: the run (Metriport's requestId) and the patient it is for. Both
 * must agree, so a message with a reused or guessed requestId for another patient finishes nobody's job.
 */
export function runKey (requestId: string, patientId: string): string {
  return JSON.stringify([requestId, patientId])
}

/** Metriport's signed URLs live 10 minutes from generation; the gateway counts from receipt. */
export const URL_LIFETIME_MS = 10 * 60 * 1000

type Outcome = Extract<WebhookResult, { kind: 'deliver' }>['outcome']
type Json = Record<string, unknown>

const ACK = { status: 200, body: {} } as const

function nonEmptyString (value: unknown): value is string {
  return typeof value === 'string' && value !== ''
}

/** An id the gateway can record and match: PostgreSQL text cannot hold NUL (Metriport's own ids are UUIDs). */
function usableId (value: unknown): value is string {
  return nonEmptyString(value) && !value.includes('\u0000')
}

/** A message that fails its job: the reason names fields and positions, never values. */
function invalid (message: string): Outcome {
  return { error: { code: 'invalid_upstream_response', message: `Metriport's webhook ${message}` } }
}

/**
 * The document's text with the two fields added last, so they win for any reader that keeps a repeated key's
 * last value. Splicing (rather than JSON.stringify of the parsed object) keeps Metriport's own text byte for
 * byte, as every other upstream's records are kept. In the one case splicing would create a repeated key (the
 * document already has a field of that name), the parsed object is re-serialised with ours replacing it.
 */
export function withAddedFields (text: string, parsed: Json, added: { patientId: string, urlExpiresAt: string }): string {
  if ('patientId' in parsed || 'urlExpiresAt' in parsed) return JSON.stringify({ ...parsed, ...added })
  const extra = `"patientId":${JSON.stringify(added.patientId)},"urlExpiresAt":${JSON.stringify(added.urlExpiresAt)}`
  const close = text.lastIndexOf('}') // the slice ends at the object's own closing brace
  const empty = text.slice(1, close).trim() === ''
  return `${text.slice(0, close)}${empty ? '' : ','}${extra}}`
}

/** The records (or the failure) a `medical.document-bulk-download-urls` message carries. */
function readOutcome (text: string, body: Json, receivedAt: Date): Outcome {
  const patients = body.patients
  if (!Array.isArray(patients)) return invalid('has no "patients" array')
  if (patients.some(p => isObject(p) && p.status === 'failed')) {
    return { error: { code: 'upstream_failed', message: 'Metriport reported that generating the document download URLs failed; submit the job again later' } }
  }
  const urlExpiresAt = new Date(receivedAt.getTime() + URL_LIFETIME_MS).toISOString()
  const patientTexts = extractArray(text, 'patients')
  const records: string[] = []
  for (const [i, patient] of patients.entries()) {
    if (!isObject(patient) || !nonEmptyString(patient.patientId)) return invalid(`patient ${i} has no patientId`)
    if (patient.status !== 'completed') return invalid(`patient ${i} has an unknown status`)
    // Metriport's type makes documents optional; a completed patient without them has none.
    if (patient.documents === undefined || patient.documents === null) continue
    if (!Array.isArray(patient.documents)) return invalid(`patient ${i}'s "documents" is not an array`)
    const documentTexts = extractArray(patientTexts[i] as string, 'documents')
    for (const [j, document] of patient.documents.entries()) {
      if (!isObject(document)) return invalid(`patient ${i}'s document ${j} is not an object`)
      records.push(withAddedFields(documentTexts[j] as string, document, { patientId: patient.patientId, urlExpiresAt }))
    }
  }
  return { records }
}

/** Verifies and interprets one delivery; see the module comment for what each answer means. */
export function receiveMetriportWebhook ({ rawBody, headers, settings, receivedAt }: Parameters<WebhookHandler<MetriportSettings>['receive']>[0]): WebhookResult {
  verifyWebhookSignature(rawBody, headers[SIGNATURE_HEADER], settings.webhookKey)
  const text = rawBody.toString('utf8')
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new WebhookRejected(400, 'The body is not JSON.')
  }
  if (!isObject(body)) throw new WebhookRejected(400, 'The body is not a JSON object.')
  const meta = body.meta
  if (!isObject(meta) || !nonEmptyString(meta.type)) throw new WebhookRejected(400, 'The body has no meta.type.')

  if (meta.type === 'ping') {
    if (!nonEmptyString(body.ping)) throw new WebhookRejected(400, 'A ping must carry a "ping" string.')
    return { kind: 'reply', status: 200, body: { pong: body.ping } }
  }
  // Other message types (document query, consolidated data) are for other integrations: acknowledge them, or
  // Metriport would disable the webhook for everyone.
  if (meta.type !== DOCUMENT_URLS_TYPE) return { kind: 'reply', ...ACK }

  if (!usableId(meta.messageId)) throw new WebhookRejected(400, 'The message has no usable meta.messageId.')
  if (!usableId(meta.requestId)) throw new WebhookRejected(400, 'The message has no usable meta.requestId.')
  const patientId = solePatientId(body.patients)
  if (patientId === null) throw new WebhookRejected(400, 'The message does not name exactly one patient by a usable patientId.')
  let outcome: Outcome
  try {
    outcome = readOutcome(text, body, receivedAt)
  } catch {
    // extractArray agreed with JSON.parse above, so this is not expected; still, never a 500 to Metriport.
    outcome = invalid('could not be read')
  }
  return { kind: 'deliver', messageId: meta.messageId, key: runKey(meta.requestId, patientId), outcome, reply: { ...ACK } }
}

/** The one patient a run's message is about (a bulk URL run is per patient), or null when it names none or several. */
function solePatientId (patients: unknown): string | null {
  if (!Array.isArray(patients) || patients.length === 0) return null
  const ids = new Set(patients.map(p => isObject(p) && usableId(p.patientId) ? p.patientId : null))
  const [id] = ids
  return ids.size === 1 && typeof id === 'string' ? id : null
}

/** The handler the registry's definition carries. */
export const metriportWebhook: WebhookHandler<MetriportSettings> = {
  signatureHeader: { name: SIGNATURE_HEADER, format: SIGNATURE_FORMAT },
  maxBodyBytes: MAX_WEBHOOK_BYTES,
  receive: receiveMetriportWebhook,
}
