/**
 * Runs a Clinia write job: the operations are cut into chunks of at most `maxOperations`, in order, and the
 * chunks are sent one after another, each only once the previous task is over, so Clinia's "operations are
 * processed in the order provided" holds across the whole job. Each accepted task id is checkpointed before
 * anything else happens: a resumed job polls that task and never sends an accepted chunk again.
 *
 * Results: page N holds chunk N's receipts. A REJECTED chunk keeps its receipts, every later operation gets a
 * NOT_SENT receipt (see {@link notSentReceipt}), and the job fails with `upstream_rejected`.
 */
import type { UpstreamClient } from '../http.js'
import { UpstreamError } from '../../domain/errors.js'
import type { JobContext, UpstreamAdapter } from '../../contract/adapter.js'
import { CliniaBulkApi, type CliniaConnection } from './bulk-task.js'
import { cliniaOperations, isCliniaResource, type CliniaOperation, type CliniaResource } from './params.js'
import { indexed, notSentReceipt, tally } from './receipts.js'

/** Where and how the adapter talks to Clinia. */
export interface CliniaSettings extends CliniaConnection {
  /** Operations per bulk request (CLINIA_MAX_OPERATIONS). */
  maxOperations: number
}

/** What a job saves after each step; handed back on resume. */
export interface CliniaCheckpoint {
  /** Operations per chunk when the job started: a changed CLINIA_MAX_OPERATIONS must not move chunk borders. */
  chunkSize: number
  /** The 1-based chunk in progress; every earlier chunk's receipts are saved. */
  chunk: number
  /** Clinia's task for `chunk` once it was accepted: poll it, never send the chunk again. */
  taskId: string | null
  /** Every accepted task id, in chunk order. */
  taskIds: string[]
  /** Operations applied and not applied so far, from the saved receipts. */
  succeeded: number
  failed: number
  /** Set once a chunk was REJECTED: the job only writes the remaining NOT_SENT receipts and fails. */
  rejected?: { chunk: number, httpStatus: number } | undefined
}

const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0

/** A checkpoint of an earlier attempt; an unreadable one fails the job rather than risk sending chunks twice. */
function readCheckpoint (raw: unknown, chunkSize: number): CliniaCheckpoint {
  if (raw === null || raw === undefined) return { chunkSize, chunk: 1, taskId: null, taskIds: [], succeeded: 0, failed: 0 }
  const cp = raw as Partial<CliniaCheckpoint>
  const rejected = cp.rejected
  const ok = count(cp.chunkSize) && cp.chunkSize > 0 && count(cp.chunk) && cp.chunk > 0 &&
    (cp.taskId === null || typeof cp.taskId === 'string') && Array.isArray(cp.taskIds) && count(cp.succeeded) && count(cp.failed) &&
    (rejected === undefined || (typeof rejected === 'object' && rejected !== null && count(rejected.chunk) && count(rejected.httpStatus)))
  if (!ok) throw new UpstreamError('internal_error', 'the job\'s Clinia checkpoint is unreadable; it is not resumed, so that no chunk is sent twice')
  return cp as CliniaCheckpoint
}

function readOperations (resource: CliniaResource, payload: unknown): CliniaOperation[] {
  const parsed = cliniaOperations[resource].safeParse((payload as { operations?: unknown } | null)?.operations)
  if (!parsed.success) throw new UpstreamError('internal_error', `the job's operations are not valid clinia ${resource} operations`)
  return parsed.data
}

/** The Clinia adapter; it keeps no state between jobs. */
export function cliniaAdapter (settings: CliniaSettings, client: UpstreamClient): UpstreamAdapter {
  const api = new CliniaBulkApi(settings, client)

  return {
    async run (ctx: JobContext): Promise<void> {
      ctx.signal.throwIfAborted()
      if (!isCliniaResource(ctx.resource)) throw new UpstreamError('internal_error', `clinia has no resource "${ctx.resource}"`)
      const resource = ctx.resource
      const operations = readOperations(resource, ctx.payload)
      let cp = readCheckpoint(ctx.checkpoint, settings.maxOperations)
      const size = cp.chunkSize
      const total = Math.ceil(operations.length / size)
      const slice = (c: number): CliniaOperation[] => operations.slice((c - 1) * size, c * size)
      const what = (c: number): string => `Clinia ${resource} bulk chunk ${c} of ${total}`
      const progress = (pagesDone: number) => ({ pagesDone, pagesTotal: total, succeeded: cp.succeeded, failed: cp.failed })

      /** After a rejection: NOT_SENT receipts for every later chunk (saving a page twice is harmless), and the error. */
      const rejection = async (rejected: NonNullable<CliniaCheckpoint['rejected']>): Promise<UpstreamError> => {
        for (let c = rejected.chunk + 1; c <= total; c++) {
          await ctx.savePage(c, slice(c).map((op, i) => notSentReceipt(op, (c - 1) * size + i, resource)), cp)
        }
        const notSent = Math.max(0, operations.length - rejected.chunk * size)
        return new UpstreamError('upstream_rejected',
          `${what(rejected.chunk)} was REJECTED by Clinia (HTTP ${rejected.httpStatus}): none of its operations were applied ` +
          `(see their receipts) and the ${notSent} operation(s) after it were not sent`, rejected.httpStatus)
      }

      if (cp.rejected !== undefined) throw await rejection(cp.rejected)
      ctx.log.debug({ operations: operations.length, chunks: total, chunkSize: size, resumeAt: cp.chunk }, 'clinia write job')

      for (let c = cp.chunk; c <= total; c++) {
        const ops = slice(c)
        const first = (c - 1) * size
        let taskId = cp.chunk === c ? cp.taskId : null
        if (taskId === null) {
          const answer = await api.submit(resource, ops, ctx.signal, what(c))
          if (answer.kind === 'rejected') {
            const t = tally(answer.receipts.statuses)
            const rejected = { chunk: c, httpStatus: answer.httpStatus }
            cp = { ...cp, chunk: c, taskId: null, succeeded: cp.succeeded + t.succeeded, failed: cp.failed + t.failed, rejected }
            await ctx.savePage(c, indexed(answer.receipts, first), cp, progress(c))
            ctx.log.warn({ chunk: c, chunks: total, httpStatus: answer.httpStatus }, 'clinia rejected a bulk chunk')
            throw await rejection(rejected)
          }
          taskId = answer.taskId
          // Saved before anything else: from here on, this chunk is only ever polled.
          cp = { ...cp, chunk: c, taskId, taskIds: [...cp.taskIds, taskId] }
          await ctx.saveCheckpoint(cp, progress(c - 1))
          await ctx.setUpstreamInfo({ taskIds: cp.taskIds })
          ctx.log.debug({ chunk: c, chunks: total, taskId, operations: ops.length }, 'clinia accepted a bulk chunk')
        }
        const receipts = await api.waitForTask(resource, taskId, ops.length, ctx.signal, what(c))
        const t = tally(receipts.statuses)
        cp = { ...cp, chunk: c + 1, taskId: null, succeeded: cp.succeeded + t.succeeded, failed: cp.failed + t.failed }
        await ctx.savePage(c, indexed(receipts, first), cp, progress(c))
        ctx.log.debug({ chunk: c, chunks: total, ...t }, 'clinia chunk done')
      }
    },
  }
}
