/**
 * Runs a Metriport `document-download-urls` job: start the bulk URL generation, remember its requestId, and
 * park the job until Metriport's webhook names that requestId and the job's patient (see webhook.ts).
 *
 * A resumed job (a worker died after the POST but before parking) POSTs again rather than trusting its
 * checkpoint. Metriport keeps one run per patient and answers a second start while it is processing with the
 * same requestId, so this re-POST is harmless; if that run has meanwhile finished, the answer is a new run, and
 * waiting for it is right: the old run's webhook may have reached nobody (Metriport does not retry), and its
 * URLs, valid 10 minutes, may already be dead. The same reasoning covers a crash before the checkpoint was saved.
 */
import type { UpstreamClient, UpstreamResponse } from '../http.js'
import { statusError } from '../status-codes.js'
import { UpstreamError } from '../../domain/errors.js'
import type { JobContext, Parked, UpstreamAdapter } from '../../contract/adapter.js'
import { METRIPORT_RESOURCE, metriportParams } from './params.js'
import type { MetriportSettings } from './env.js'
import { runKey } from './webhook.js'

/** What a job saves once Metriport has accepted the start: the run the webhook will name. */
export interface MetriportCheckpoint { requestId: string }

/** The start endpoint's answer. */
export interface BulkUrlStart { status: 'processing' | 'completed' | 'failed', requestId: string }

export const BULK_URL_PATH = '/medical/v1/document/download-url/bulk'

function readCheckpoint (raw: unknown): MetriportCheckpoint | null {
  const requestId = (raw as Partial<MetriportCheckpoint> | null)?.requestId
  return typeof requestId === 'string' && requestId !== '' ? { requestId } : null
}

/**
 * Maps the start endpoint's answer to the run it started, or to the job's stable failure. A refusal is told by
 * its status: Metriport's problem text is never quoted, since its detail may name the patient.
 */
function readStart (res: UpstreamResponse): BulkUrlStart {
  const s = res.status
  if (s === 200) {
    const body = res.json<Partial<BulkUrlStart> | null>()
    const known = ['processing', 'completed', 'failed'].includes(body?.status as string)
    if (!known || typeof body?.requestId !== 'string' || body.requestId === '') {
      throw new UpstreamError('invalid_upstream_response', 'Metriport answered the bulk URL start without a known status and a requestId', s)
    }
    return { status: body.status as BulkUrlStart['status'], requestId: body.requestId }
  }
  if (s === 404) throw statusError(s, 'Metriport does not know this patient (404)')
  if (s === 401 || s === 403) throw statusError(s, `Metriport refused the API key (${s})`)
  if (s === 429) throw statusError(s, 'Metriport kept refusing the request with 429')
  if (s >= 400 && s < 500) throw statusError(s, `Metriport rejected the request (${s})`)
  throw statusError(s, `Metriport answered the bulk URL start with ${s}`)
}

/** The Metriport adapter: stateless, so one instance serves every job. */
export function metriportAdapter (settings: MetriportSettings, client: UpstreamClient): UpstreamAdapter {
  const url = new URL(BULK_URL_PATH.slice(1), `${settings.baseUrl.replace(/\/+$/, '')}/`)

  return {
    async run (ctx: JobContext): Promise<Parked> {
      ctx.signal.throwIfAborted()
      if (ctx.resource !== METRIPORT_RESOURCE) throw new UpstreamError('internal_error', `metriport has no resource "${ctx.resource}"`)
      const parsed = metriportParams.safeParse(ctx.params ?? {})
      if (!parsed.success) throw new UpstreamError('internal_error', 'the job\'s params are not valid for metriport')
      const { patientId, metadata } = parsed.data
      const earlier = readCheckpoint(ctx.checkpoint)

      const target = new URL(url)
      target.searchParams.set('patientId', patientId)
      const res = await client.request({
        upstream: 'metriport',
        method: 'POST',
        url: target,
        headers: { 'x-api-key': settings.apiKey, accept: 'application/json', ...(metadata !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(metadata !== undefined ? { body: JSON.stringify({ metadata }) } : {}),
        signal: ctx.signal,
        // A retried start is answered with the same requestId while the run is processing (see above).
        idempotent: true,
      })
      const start = readStart(res)
      ctx.log.info({ requestId: start.requestId, status: start.status, resumed: earlier !== null }, 'metriport bulk URL generation started')
      if (earlier !== null && earlier.requestId !== start.requestId) {
        ctx.log.info({ earlierRequestId: earlier.requestId, requestId: start.requestId }, 'metriport finished the earlier run; waiting for the new one')
      }
      if (start.status === 'failed') {
        throw new UpstreamError('upstream_failed', 'Metriport could not start generating the document download URLs; submit the job again later', res.status)
      }
      // `completed` at once is in Metriport's type but its code never answers it; should it, the URLs still come
      // only by webhook ("once completed, a webhook request will be sent"), so the job parks all the same.
      await ctx.saveCheckpoint({ requestId: start.requestId } satisfies MetriportCheckpoint, { pagesDone: 0, pagesTotal: 1 })
      await ctx.setUpstreamInfo({ requestId: start.requestId })
      // Parked under the run and its patient: only a message naming both finishes this job (see runKey).
      return await ctx.park({ key: runKey(start.requestId, patientId), timeoutSeconds: settings.webhookTimeoutSeconds })
    },
  }
}
