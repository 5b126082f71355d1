/**
 * One Clinia bulk request on the wire: POST the operations (ACCEPTED with a task id, or REJECTED with a receipt
 * per operation), then poll `GET …/bulk/{taskId}?withReceipts=true` with a doubling delay until the task is no
 * longer PENDING. Messages name statuses, counts and Clinia's error type at most: Clinia's error messages and
 * receipts may echo operation data, so they never go into errors or logs.
 */
import { sleep } from '../../lib/time.js'
import type { UpstreamClient, UpstreamResponse } from '../http.js'
import { statusError } from '../status-codes.js'
import { UpstreamError } from '../../domain/errors.js'
import type { CliniaOperation, CliniaResource } from './params.js'
import { readReceipts, type ChunkReceipts } from './receipts.js'
import { isObject } from '../../lib/values.js'

/** Where and how fast the adapter talks to Clinia. */
export interface CliniaConnection {
  /** https://{workspace}.clinia.cloud */
  baseUrl: string
  apiKey: string
  sourceKey: string
  /** Wait before the first poll of a task; doubled after each PENDING answer. Default 500. */
  pollInitialMs?: number
  /** The longest wait between polls. Default 10 000. */
  pollMaxMs?: number
  /** How long one task may stay PENDING before the job fails with upstream_timeout. Default 1 hour. */
  taskTimeoutMs?: number
  /** Per-attempt timeout of every request; the client's default when absent. */
  requestTimeoutMs?: number
}

/** What Clinia said to a bulk request. */
export type SubmitAnswer =
  | { kind: 'accepted', taskId: string }
  | { kind: 'rejected', httpStatus: number, receipts: ChunkReceipts }

const TASK_STATUSES = new Set(['PENDING', 'SUCCESS', 'FAILURE', 'CANCELLED'])
// A bulk submit is re-sent only on answers that mean "not processed": a 500, 502 or 504 may come after Clinia
// accepted the task, and sending it again would apply every operation twice.
const SUBMIT_RETRYABLE = new Set([429, 503])
const TASK_ID = /^[\w.:-]{1,200}$/

function parse (res: UpstreamResponse): unknown {
  try {
    return JSON.parse(res.text())
  } catch {
    return undefined
  }
}

/** Clinia's error `type` (e.g. INVALID_ARGUMENT): a fixed vocabulary, safe to show, unlike its message. */
function errorType (body: unknown): string {
  const type = isObject(body) ? body.type ?? (isObject(body.error) ? body.error.type : undefined) : undefined
  return typeof type === 'string' && /^[A-Z][A-Z_]{0,39}$/.test(type) ? ` ${type}` : ''
}

/** An answer the protocol has no use for, as a stable error. */
function unexpected (res: UpstreamResponse, what: string, body: unknown, note = ''): UpstreamError {
  const s = res.status
  if (s === 401 || s === 403) return statusError(s, `${what}: Clinia answered ${s}; check CLINIA_API_KEY`)
  if (s >= 400 && s < 500) return statusError(s, `${what}: Clinia answered ${s}${errorType(body)}`)
  if (s >= 500) return statusError(s, `${what}: Clinia answered ${s}${note}`)
  return statusError(s, `${what}: Clinia answered ${s} unexpectedly`)
}

const invalid = (what: string, why: string, status: number): UpstreamError =>
  new UpstreamError('invalid_upstream_response', `${what}: ${why}`, status)

/** Clinia's bulk endpoints for one source, through the shared client. */
export class CliniaBulkApi {
  readonly #c: CliniaConnection
  readonly #client: UpstreamClient
  readonly #base: string

  constructor (connection: CliniaConnection, client: UpstreamClient) {
    this.#c = connection
    this.#client = client
    this.#base = `${connection.baseUrl.replace(/\/+$/, '')}/sources/${encodeURIComponent(connection.sourceKey)}/v1/`
  }

  #headers (): Record<string, string> {
    return { accept: 'application/json', 'x-clinia-api-key': this.#c.apiKey }
  }

  /** Sends one chunk once. A REJECTED answer is returned (with its receipts), not thrown: the adapter records it. */
  async submit (resource: CliniaResource, operations: readonly CliniaOperation[], signal: AbortSignal, what: string): Promise<SubmitAnswer> {
    const res = await this.#client.request({
      method: 'POST',
      url: `${this.#base}${resource}/bulk`,
      headers: { ...this.#headers(), 'content-type': 'application/json' },
      body: JSON.stringify({ operations }),
      signal,
      upstream: 'clinia',
      timeoutMs: this.#c.requestTimeoutMs,
      idempotent: false,
      retryable: r => SUBMIT_RETRYABLE.has(r.status),
    })
    const body = parse(res)
    if (res.status === 401 || res.status === 403) throw unexpected(res, what, body)
    // REJECTED's HTTP status is unconfirmed (likely 400): the body decides, whatever the 2xx or 4xx status.
    if (isObject(body) && body.status === 'REJECTED' && res.status < 500) {
      return { kind: 'rejected', httpStatus: res.status, receipts: readReceipts(res.text(), body, operations.length, what, res.status) }
    }
    if (res.status < 200 || res.status >= 300) throw unexpected(res, what, body, '; not sent again, since Clinia may have accepted it')
    if (!isObject(body) || body.status !== 'ACCEPTED') throw invalid(what, 'answer is neither ACCEPTED nor REJECTED', res.status)
    // taskId replaces the deprecated bulkId; bulkId only when an older API answers without taskId.
    const taskId = typeof body.taskId === 'string' ? body.taskId : body.bulkId
    if (typeof taskId !== 'string' || !TASK_ID.test(taskId)) throw invalid(what, 'ACCEPTED without a usable "taskId"', res.status)
    return { kind: 'accepted', taskId }
  }

  /**
   * Polls a task until Clinia has an outcome for every operation; resolves with one receipt per operation.
   * A task reported done while a receipt still says PENDING is polled on.
   */
  async waitForTask (resource: CliniaResource, taskId: string, expected: number, signal: AbortSignal, what: string): Promise<ChunkReceipts> {
    const url = `${this.#base}${resource}/bulk/${encodeURIComponent(taskId)}?withReceipts=true`
    const initial = this.#c.pollInitialMs ?? 500
    const max = this.#c.pollMaxMs ?? 10_000
    const deadline = Date.now() + (this.#c.taskTimeoutMs ?? 3_600_000)
    for (let n = 1; ; n++) {
      await sleep(Math.min(max, initial * 2 ** Math.min(n - 1, 30)), signal)
      const res = await this.#client.request({
        method: 'GET', url, headers: this.#headers(), signal, upstream: 'clinia', timeoutMs: this.#c.requestTimeoutMs,
      })
      const body = parse(res)
      if (res.status === 404) {
        throw new UpstreamError('upstream_not_found', `${what}: Clinia no longer knows task ${taskId} (404); its outcome cannot be read`, 404)
      }
      if (res.status !== 200) throw unexpected(res, what, body)
      if (!isObject(body) || typeof body.status !== 'string' || !TASK_STATUSES.has(body.status)) {
        throw invalid(what, 'task status is not one of PENDING, SUCCESS, FAILURE, CANCELLED', res.status)
      }
      if (body.status !== 'PENDING') {
        const receipts = readReceipts(res.text(), body, expected, what, res.status)
        if (!receipts.statuses.includes('PENDING')) return receipts
      }
      if (Date.now() > deadline) {
        throw new UpstreamError('upstream_timeout', `${what}: task ${taskId} still pending after ${Math.round((this.#c.taskTimeoutMs ?? 3_600_000) / 1000)} s`)
      }
    }
  }
}
