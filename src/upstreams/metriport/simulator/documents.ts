/**
 * The simulator's patients and their documents: a pure function of the seed, so a test can name a patient
 * and know its documents. Only the signed URL depends on the run (requestId), as Metriport signs anew each time.
 */
import { createHmac } from 'node:crypto'
import { mulberry32 } from '../../simulator-kit/seeded-random.js'

/** Patient ids are fixed (not seeded) so the OpenAPI example names a patient the sandbox knows. */
export function sandboxPatientId (index: number): string {
  return `0195f3c2-5a1e-7d40-9b6a-${(0x100000000000 + index).toString(16).slice(1)}`
}

/** The first patients the sandbox simulator knows (it knows `patientCount` of them). */
export const SANDBOX_PATIENT_IDS: readonly string[] = Array.from({ length: 3 }, (_, i) => sandboxPatientId(i))

/** A document as Metriport's webhook lists it. */
export interface SimulatedDocument {
  id: string
  fileName: string
  description: string
  status: string
  indexed: string
  mimeType: string
  size: number
  type: { coding: Array<{ system: string, code: string, display: string }>, text: string }
  url: string
}

const KINDS = [
  { code: '34133-9', display: 'Summary of episode note', mimeType: 'application/xml', ext: 'xml' },
  { code: '11506-3', display: 'Progress note', mimeType: 'application/xml', ext: 'xml' },
  { code: '18842-5', display: 'Discharge summary', mimeType: 'application/pdf', ext: 'pdf' },
  { code: '60591-5', display: 'Patient summary Document', mimeType: 'application/xml', ext: 'xml' },
] as const

// Real descriptions carry accents and quotes: the gateway must keep the text as sent.
const DESCRIPTIONS = ['Continuity of Care Document', 'Résumé de sortie – "final"', 'Clinic visit note', 'Lab results \\ imaging']

/** The index of a known patient id, or -1. */
export function patientIndex (patientId: string, patientCount: number): number {
  for (let i = 0; i < patientCount; i++) if (sandboxPatientId(i) === patientId) return i
  return -1
}

/** A patient's documents without URLs: 1..6 of them, fixed by seed and patient. */
export function patientDocuments (seed: number, index: number): Array<Omit<SimulatedDocument, 'url'>> {
  const random = mulberry32((seed * 7919) ^ (index + 1) * 104729)
  const count = 1 + Math.floor(random() * 6)
  return Array.from({ length: count }, (_, k) => {
    const kind = KINDS[Math.floor(random() * KINDS.length)] as typeof KINDS[number]
    const day = new Date(Date.UTC(2023, 0, 1) + Math.floor(random() * 700) * 86_400_000)
    return {
      id: `1.2.840.114350.1.13.${seed}.${index}.${k + 1}`,
      fileName: `${day.toISOString().slice(0, 10)}_${kind.code}_${k + 1}.${kind.ext}`,
      description: DESCRIPTIONS[Math.floor(random() * DESCRIPTIONS.length)] as string,
      status: 'current',
      indexed: day.toISOString(),
      mimeType: kind.mimeType,
      size: 1024 + Math.floor(random() * 5_000_000),
      type: { coding: [{ system: 'http://loinc.org', code: kind.code, display: kind.display }], text: kind.display },
    }
  })
}

/** An S3-style presigned URL, valid 10 minutes, whose signature differs per run: a credential, never to be logged. */
export function signedUrl (patientId: string, documentId: string, requestId: string, issuedAt: Date): string {
  const signature = createHmac('sha256', 'metriport-simulator').update(`${requestId}/${documentId}`).digest('hex')
  const date = issuedAt.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
  return `https://metriport-sandbox-medical-documents.s3.us-west-1.amazonaws.com/${patientId}/${encodeURIComponent(documentId)}` +
    `?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=${date}&X-Amz-Expires=600&X-Amz-SignedHeaders=host&X-Amz-Signature=${signature}`
}
