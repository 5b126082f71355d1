/**
 * One webhook POST of the Metriport simulator, and its record: signed over the exact bytes sent, and counted as
 * delivered only when answered 200 within the timeout, as Metriport counts it.
 */
import { request, type Agent } from 'undici'
import { SIGNATURE_HEADER, signWebhook } from '../signature.js'

/** One webhook the simulator sent, and what the receiver answered. */
export interface DeliveryRecord {
  kind: 'result' | 'ping' | 'forged' | 'raw'
  messageId: string | null
  requestId: string | null
  /** The exact bytes sent. */
  body: string
  /** The receiver's status; null when it did not answer in time (or at all). */
  status: number | null
  /** The receiver's body, parsed when JSON. */
  answer: unknown
  error: string | null
  durationMs: number
  /** Answered 200 within the timeout: what Metriport counts as delivered. */
  ok: boolean
}

/** What to send: `signature` undefined = signed with the webhook key, null = no signature header. */
export interface WebhookToSend {
  kind: DeliveryRecord['kind']
  messageId: string | null
  requestId: string | null
  body: string
  signature?: string | null | undefined
}

/** POSTs one webhook; never throws: a failure is in the record. */
export async function postWebhook (d: WebhookToSend, to: {
  url: string | undefined
  webhookKey: string
  agent: Agent
  timeoutMs: number
  /** Aborted when the simulator closes. */
  closing: AbortSignal
}): Promise<DeliveryRecord> {
  const started = performance.now()
  const record: DeliveryRecord = {
    kind: d.kind,
    messageId: d.messageId,
    requestId: d.requestId,
    body: d.body,
    status: null,
    answer: null,
    error: null,
    durationMs: 0,
    ok: false,
  }
  const timeout = AbortSignal.timeout(to.timeoutMs)
  try {
    if (to.url === undefined) throw new Error('no webhook URL is configured')
    const signature = d.signature === undefined ? signWebhook(d.body, to.webhookKey) : d.signature
    const res = await request(to.url, {
      method: 'POST',
      dispatcher: to.agent,
      headers: { 'content-type': 'application/json', 'user-agent': 'Metriport-Webhook-Simulator', ...(signature !== null ? { [SIGNATURE_HEADER]: signature } : {}) },
      body: d.body,
      signal: AbortSignal.any([to.closing, timeout]),
    })
    const text = await res.body.text()
    record.status = res.statusCode
    try { record.answer = JSON.parse(text) } catch { record.answer = text }
    record.ok = res.statusCode === 200
  } catch (err) {
    record.error = timeout.aborted ? 'timeout' : (err as Error).message
  }
  record.durationMs = performance.now() - started
  return record
}
