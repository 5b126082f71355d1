/**
 * `GET /jobs/{id}/results`: cursor pages of the cached records, or the whole set as NDJSON. Records are stored as
 * the upstream's JSON text and written out as they are: no parse, no re-serialisation, flat memory. Pages and
 * NDJSON batches end at a record count or a byte cap, whichever comes first, so a job of 1 MB records costs a few
 * megabytes per reader, not a thousand of them.
 */
import { Readable } from 'node:stream'
import type { FastifyReply } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { JobRead } from '../domain/job.js'
import { jsonPage, ndjsonChunks } from './result-bodies.js'
import type { BatchSize, RecordBatch, ResultPosition } from '../domain/results.js'
import { FollowBrokenError } from '../domain/errors.js'
import type { JobService } from '../engine/job-service.js'
import type { Registry } from '../upstreams/registry.js'
import { findJobOr404 } from './jobs.js'
import { decodeCursor, encodeCursor } from './cursors.js'
import { ProblemError, problemSchema } from './problem.js'
import { StallWatch, StreamSlots } from './result-streams.js'

/** Limits of result reads (configuration: RESULT_PAGE_MAX_BYTES, RESULT_BATCH_MAX_BYTES, RESULT_STREAM_STALL_SECONDS, MAX_RESULT_STREAMS_PER_CLIENT). */
export interface ResultReadOptions {
  /** The upstreams the gateway knows: whether a failed job's records are a write upstream's receipts. */
  registry: Registry
  pageMaxBytes: number
  batchMaxBytes: number
  stallSeconds: number
  maxStreamsPerClient: number
}

/**
 * Records per NDJSON batch at most. Batches are sized by bytes (RESULT_BATCH_MAX_BYTES): this only bounds the
 * per-record arrays of a batch of tiny records.
 */
const BATCH_RECORDS = 50_000
/**
 * NDJSON goes to the socket in slices of this: the stall watch sees a client take data slice by slice, so one that
 * reads slowly but steadily (64 KiB per stall period) is never mistaken for one that stopped.
 */
const SLICE_BYTES = 64 * 1024
/** Streams end at unpredictable times; a client that was refused one asks again after this. */
const STREAM_RETRY_AFTER_SECONDS = 5

// Page and position are PostgreSQL integers: a cursor beyond their range was not given out by this API. Nor was one
// at the last position an int4 can hold: no page holds 2^31 records, and no record could follow it.
// A position of -1 is before a page's first record: the cursor of a partial read that has read nothing yet.
const int4 = z.number().int().min(0).max(2_147_483_647)
const positionSchema = z.tuple([int4, z.number().int().min(-1).max(2_147_483_646)])
/** Where a partial read that has read nothing continues: before the first record of page 0 (pages count from 0 or 1). */
const START = encodeCursor([0, -1])

/** NDJSON when the client lists it (with a non-zero q) and does not prefer JSON by a higher q. */
export function wantsNdjson (accept: string | undefined): boolean {
  if (accept === undefined) return false
  let ndjson = 0
  let json = 0
  for (const part of accept.split(',')) {
    const [type = '', ...opts] = part.trim().toLowerCase().split(';').map(s => s.trim())
    const q = Number(opts.find(o => o.startsWith('q='))?.slice(2) ?? 1)
    if (type === 'application/x-ndjson' || type === 'application/ndjson') ndjson = Math.max(ndjson, q)
    if (type === 'application/json') json = Math.max(json, q)
  }
  return ndjson > 0 && ndjson >= json
}

/**
 * Results are readable once a job completed, or failed with records of a write upstream (its receipts, which
 * say what was and was not written); 409 before, 410 from expiry on (the sweeper deletes the rows within a
 * minute) and after a cancel. A failed read job's records are never served: they would pass for a whole set.
 * Expiry is the database's judgement, made with the job's status as read: a job answers 410 exactly when it
 * reads expired (or, failed with receipts, has passed its expiresAt), whatever this process's clock says.
 */
function assertReadable (job: JobRead, registry: Registry): void {
  const receipts = job.status === 'failed' && job.records > 0 && registry.find(job.upstream)?.kind === 'write'
  const hasResults = job.status === 'completed' || job.status === 'expired' || receipts
  const expired = job.status === 'expired' || (job.msToExpiry !== null && job.msToExpiry <= 0)
  if (job.status === 'cancelled' || (hasResults && expired)) {
    throw new ProblemError('results_expired', 'These results have expired and were deleted. Submit the job again (POST /jobs) to get fresh ones.')
  }
  if (!hasResults) {
    throw new ProblemError('results_not_ready', `The job is ${job.status}: results are readable once it has completed. Poll GET /jobs/${job.id}.`)
  }
}

/**
 * The batches of a followed job (engine/result-follow.ts) for the response: the status line and headers go out at
 * once, so the client knows the stream has begun before the first record is saved. A job that ends without
 * completing (or a shutdown of this process) breaks the response off: no terminating chunk, so the client sees it
 * is incomplete. `gone` aborts when the response closes (the client left, or a HEAD was answered): the reads stop,
 * even while waiting for the next page.
 */
async function * followBatches (
  jobs: JobService, reply: FastifyReply, job: { clientId: string, jobId: string, gone: AbortSignal }, size: BatchSize
): AsyncGenerator<RecordBatch> {
  if (job.gone.aborted) return
  reply.raw.flushHeaders()
  try {
    yield * jobs.followResults({ clientId: job.clientId, jobId: job.jobId, signal: job.gone }, size)
  } catch (err) {
    if (!(err instanceof FollowBrokenError)) throw err
    reply.log.info({ jobId: job.jobId, reason: err.reason }, 'followed job ended without completing, or the gateway is stopping: NDJSON stream broken off')
    reply.raw.destroy()
  }
}

export const resultRoutes: FastifyPluginAsyncZod<ResultReadOptions> = async (app, opts) => {
  const slots = new StreamSlots(opts.maxStreamsPerClient)

  app.get('/jobs/:id/results', {
    schema: {
      tags: ['jobs'],
      summary: 'Read a job\'s results',
      description: 'Records are the upstream\'s own JSON objects, unchanged, in a stable order (page, then position). ' +
        'With `Accept: application/x-ndjson` the whole set is streamed, one record per line; otherwise cursor pages. ' +
        'A page holds at most `limit` records and at most RESULT_PAGE_MAX_BYTES of them (at least one record, however large): ' +
        'it may hold fewer than `limit` while more follow, so read until `nextCursor` is null. ' +
        'A client may have MAX_RESULT_STREAMS_PER_CLIENT NDJSON streams open at once (429 `too_many_streams` beyond); ' +
        'a stream whose client takes nothing for RESULT_STREAM_STALL_SECONDS is cut off. ' +
        '409 before the job completes, 410 once its results expired. ' +
        'With `partial=true`, cursor pages of a queued or running job hold the records saved so far, with `"complete": false` ' +
        'and a `nextCursor` to ask again with; once the job has ended the same cursors go on, and the last page has `"complete": true`. ' +
        'With `follow=true` and `Accept: application/x-ndjson`, a queued or running job streams its records as they are saved (no `X-Total-Count`), ' +
        'and the response ends when the job completes; if the job fails or is cancelled the stream is broken off (no terminating chunk).',
      params: z.object({ id: z.string() }),
      querystring: z.object({
        limit: z.coerce.number().int().min(1).max(1000).default(1000).describe('Most records in the page; fewer when the page reaches RESULT_PAGE_MAX_BYTES'),
        cursor: z.string().optional().describe('`nextCursor` of the previous page'),
        partial: z.enum(['true', 'false']).optional().describe('`true`: a queued or running job answers with the records saved so far (cursor pages only), and every page says whether the job has ended (`complete`)'),
        follow: z.enum(['true', 'false']).optional().describe('`true` (NDJSON only: with a JSON `Accept` it is a 400): a queued or running job streams its records as they are saved and the response ends when the job ends; ' +
          'a job that fails or is cancelled meanwhile breaks the stream (no terminating chunk). On an ended job it changes nothing'),
      }),
      response: {
        200: z.object({
          data: z.array(z.record(z.string(), z.unknown())).describe('The upstream\'s records'),
          nextCursor: z.string().nullable().describe('Where the next page starts; null after the last record'),
          total: z.number().int().describe('How many records the job holds (so far, while it runs)'),
          complete: z.boolean().optional().describe('With `partial=true`: whether the job has ended, so that no record will be added. While false, `nextCursor` is never null: ask again with it'),
        }).describe('A page of records (JSON), or every record as NDJSON with Accept: application/x-ndjson'),
        // 429 (rate limit, and too_many_streams for NDJSON) is added to the document with every rate-limited route's.
        400: problemSchema,
        401: problemSchema,
        404: problemSchema,
        409: problemSchema,
        410: problemSchema,
      },
    },
  }, async (request, reply) => {
    const job = await findJobOr404(request, request.params.id)
    const ndjson = wantsNdjson(request.headers.accept)
    if (request.query.follow === 'true' && !ndjson) {
      // Not ignored: a client that asks to follow and would get one cursor page (or a 409) has forgotten its Accept.
      throw new ProblemError('validation_failed', 'follow=true streams NDJSON: send Accept: application/x-ndjson, or read cursor pages with partial=true.',
        { errors: [{ in: 'query', pointer: '/follow', detail: 'follow=true needs Accept: application/x-ndjson' }] })
    }
    const running = job.status === 'queued' || job.status === 'running'
    const partial = request.query.partial === 'true' && !ndjson
    const unfinished = partial && running
    const following = request.query.follow === 'true' && running
    if (!unfinished && !following) assertReadable(job, opts.registry)

    if (ndjson) {
      const release = slots.take(request.clientId)
      if (release === null) {
        throw new ProblemError('too_many_streams', `This client already has ${slots.max} result streams open on this gateway. ` +
          'Retry when one of them has ended, or read pages instead.', { headers: { 'Retry-After': String(STREAM_RETRY_AFTER_SECONDS) } })
      }
      // 'close' comes however the response ends: completed, the client gone, cut off below, or failed.
      reply.raw.once('close', release)
      const stall = new StallWatch(opts.stallSeconds * 1000, () => {
        request.log.warn({ jobId: job.id, stallSeconds: opts.stallSeconds }, 'NDJSON reader took nothing for the stall period: stream cut off')
        reply.raw.destroy()
      })
      reply.raw.once('close', () => stall.stop())
      request.log.info({ jobId: job.id, records: job.records, following }, 'streaming results as NDJSON')
      const size = { limit: BATCH_RECORDS, maxBytes: opts.batchMaxBytes }
      let batches: AsyncGenerator<RecordBatch>
      if (following) {
        // Listened for from now: a response closed before the body is first read (HEAD) stops the follow too.
        const gone = new AbortController()
        reply.raw.once('close', () => gone.abort())
        batches = followBatches(app.jobs, reply, { clientId: request.clientId, jobId: job.id, gone: gone.signal }, size)
      } else batches = app.jobs.resultBatches(job.id, size)
      // Records stay bytes from PostgreSQL to the socket (see result-stream.ts), one database batch at a time.
      const chunks = async function * () {
        for await (const batch of batches) {
          for (const data of ndjsonChunks(batch)) {
            for (let at = 0; at < data.length; at += SLICE_BYTES) {
              // Suspended here exactly while the client is not taking what was sent (backpressure): that is a stall.
              stall.arm()
              yield data.subarray(at, at + SLICE_BYTES)
              stall.disarm()
            }
          }
        }
        // The last slices still wait on the client until the response has finished ('close' stops the watch).
        stall.arm()
      }
      // Two slices buffered at most: with the batch being read ahead, memory stays at a few batches per stream.
      const body = Readable.from(chunks(), { objectMode: true, highWaterMark: 2 })
      // A followed job's total is not known until it ends.
      if (!following) reply.header('X-Total-Count', String(job.records))
      return (reply as FastifyReply).type('application/x-ndjson').send(body)
    }

    const { limit, cursor } = request.query
    let after: ResultPosition | null = null
    if (cursor !== undefined) {
      const decoded = decodeCursor(cursor, positionSchema)
      if (decoded === null) throw new ProblemError('invalid_cursor', 'The cursor is not one this API gave out.', { errors: [{ in: 'query', pointer: '/cursor', detail: 'invalid cursor' }] })
      after = { page: decoded[0], position: decoded[1] }
    }
    // `limit` records or RESULT_PAGE_MAX_BYTES of them, whichever comes first; the cursor continues after the last.
    const size = { limit, maxBytes: opts.pageMaxBytes }
    const batch = unfinished ? await app.jobs.partialResultBatch(job.id, after, size) : await app.jobs.resultBatch(job.id, after, size)
    const count = batch.starts.length
    const last = count > 0 ? encodeCursor([batch.pages[count - 1], batch.positions[count - 1]]) : null
    // While the job runs, more may come: the client asks again from where it stands, never with a null cursor.
    const nextCursor = batch.more || unfinished ? last ?? cursor ?? START : null
    // Records are JSON bytes already: spliced into the envelope, never parsed to be serialised again.
    return (reply as FastifyReply).type('application/json; charset=utf-8').send(jsonPage(batch, count, nextCursor, job.records, partial ? !unfinished : undefined))
  })
}
