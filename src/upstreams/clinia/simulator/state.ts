/**
 * The Clinia simulator's mutable side: the source's records, bulk tasks, counters, and the faults tests inject.
 * Tasks run lazily and strictly in the order they were accepted: reading a task first applies every task
 * accepted before it, so operations are processed in order within and across requests, as Clinia promises.
 */
import { createHash, randomBytes } from 'node:crypto'
import { targetOf, type CliniaOperation, type CliniaResource } from '../params.js'
import { COUNTERS_PER_ENTRY, DEFAULT_MAX_ENTRIES, countUnder, remember } from '../../simulator-kit/bounds.js'
import { ADMISSION_STATS, type InjectedStatus } from '../../simulator-kit/admission.js'
import { byKey, freshStats } from '../../simulator-kit/stats.js'

/**
 * Credentials a simulator started alone (tests, benchmarks) accepts unless told others. Published: the gateway's
 * sandbox draws its own API key per process.
 */
export const SANDBOX_CREDENTIALS = { apiKey: 'sandbox-clinia-api-key', sourceKey: 'sandbox' } as const

/** A record the simulator starts with. */
export interface SeedResource { type: string, id: string, data: Record<string, unknown> }

export interface CliniaSimulatorOptions {
  apiKey?: string
  sourceKey?: string
  /** Operations one request may carry; more make it REJECTED. Default 1000 (Clinia's real limit is unconfirmed). */
  maxOperations?: number
  /** Status reads of a task that answer PENDING before it is processed. Default 2. */
  pendingPolls?: number
  /** Records present from the start. */
  seed?: readonly SeedResource[]
  /** The HTTP status of a REJECTED answer. Default 400. */
  rejectedStatus?: RejectedStatus
  /**
   * Tasks kept, and tasks waiting to be processed: beyond it the oldest task is forgotten (a read of it is a 404),
   * and the oldest waiting one is processed at once, as Clinia works through its backlog. Default 1000.
   */
  maxEntries?: number
  /** Records and relationships kept; beyond it the oldest is forgotten. Default 100 times maxEntries. */
  maxRecords?: number
}

/**
 * The HTTP status a REJECTED bulk answer comes with. docs/UPSTREAMS.md has it unconfirmed, likely 400; a 200 (the body
 * says what happened), a 409 or a 422 are as plausible. The body is `{"status":"REJECTED","receipts":[...]}` in each.
 */
export type RejectedStatus = 200 | 400 | 409 | 422

/** Every {@link RejectedStatus}, for tests that try each. */
export const REJECTED_STATUSES: readonly RejectedStatus[] = [400, 200, 409, 422]

/** What a test can inject: Clinia documents no throttling headers, so its 429 is a fault like a server error. */
export type InjectedCliniaStatus = 429 | InjectedStatus
/** Which requests an injected fault hits. */
export type FaultTarget = 'submit' | 'poll' | 'any'

/** One receipt, with Clinia's field names; built in alphabetical key order, as Clinia's (Go) encoder writes them. */
export interface SimReceipt {
  action: string
  error?: { code: number, message: string, type: string }
  id?: string
  status: 'SUCCESS' | 'FAILURE' | 'CANCELLED' | 'PENDING'
  targetType: 'RESOURCE' | 'RELATIONSHIP'
  type: string
}

/** An accepted bulk request. */
export interface SimTask {
  id: string
  resource: CliniaResource
  operations: CliniaOperation[]
  /** Null until processed. */
  receipts: SimReceipt[] | null
  polls: number
}

/** The simulator's counters at start; reset() brings them back. */
const STATS = {
  /** Authenticated bulk POSTs that reached validation (accepted or rejected). */
  submits: 0,
  tasksCreated: 0,
  rejected: 0,
  polls: 0,
  ...ADMISSION_STATS,
  /** POSTs by digest of their operations (see {@link operationsDigest}): how often each chunk was sent. */
  chunkPosts: byKey(),
}

export type CliniaSimulatorStats = typeof STATS

/** JSON with sorted keys: the same operations give the same text whatever key order they travelled in. */
function canonical (v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (typeof v === 'object' && v !== null) {
    return `{${Object.keys(v).sort().map(k => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`
  }
  return JSON.stringify(v)
}

/** A short digest identifying a list of operations, key order aside. */
export function operationsDigest (operations: readonly unknown[]): string {
  return createHash('sha256').update(canonical(operations)).digest('hex').slice(0, 16)
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
/** A 27-character id in the look of Clinia's (KSUID-like) ids. */
export const newId = (): string => [...randomBytes(27)].map(b => BASE62[b % 62]).join('')

const failure = (code: number, type: string, message: string): SimReceipt['error'] => ({ code, message, type })

export class CliniaSimulatorState {
  readonly options: Readonly<CliniaSimulatorOptions>
  readonly tasks = new Map<string, SimTask>()
  /** Records by `${type}/${id}`; relationships by `${type}/${fromId}.${toId}`. */
  readonly resources = new Map<string, Record<string, unknown>>()
  readonly relationships = new Map<string, Record<string, unknown>>()
  stats: CliniaSimulatorStats = freshStats(STATS)
  /** The status of REJECTED answers; starts as the options say, a test may change it. */
  rejectedStatus: RejectedStatus = 400
  #queue: SimTask[] = []
  #faults: Array<{ status: InjectedCliniaStatus, on: FaultTarget, seconds: number | null }> = []

  constructor (options: CliniaSimulatorOptions = {}) {
    this.options = options
    this.reset()
  }

  get apiKey (): string { return this.options.apiKey ?? SANDBOX_CREDENTIALS.apiKey }
  get sourceKey (): string { return this.options.sourceKey ?? SANDBOX_CREDENTIALS.sourceKey }
  get maxOperations (): number { return this.options.maxOperations ?? 1000 }
  get maxEntries (): number { return this.options.maxEntries ?? DEFAULT_MAX_ENTRIES }
  get maxRecords (): number { return this.options.maxRecords ?? this.maxEntries * 100 }

  /** Back to the state right after start: seed records only, no tasks, zero counters, no faults. */
  reset (): void {
    this.tasks.clear()
    this.resources.clear()
    this.relationships.clear()
    this.#queue = []
    this.#faults = []
    this.stats = freshStats(STATS)
    this.rejectedStatus = this.options.rejectedStatus ?? 400
    for (const r of this.options.seed ?? []) this.resources.set(`${r.type}/${r.id}`, r.data)
  }

  /**
   * The next `n` requests of the given kind answer `status`; a 429 with Retry-After `seconds`, or with none when
   * `seconds` is null (Clinia documents no throttling headers at all, so both are plausible).
   */
  failNext (n: number, status: InjectedCliniaStatus, on: FaultTarget = 'any', seconds: number | null = 0): void {
    for (let i = 0; i < n; i++) this.#faults.push({ status, on, seconds })
  }

  /** The fault for this request, if one is armed for its kind; counters move with it. */
  fault (kind: 'submit' | 'poll'): { status: InjectedCliniaStatus, seconds: number | null } | undefined {
    const i = this.#faults.findIndex(f => f.on === 'any' || f.on === kind)
    if (i < 0) return undefined
    const [f] = this.#faults.splice(i, 1)
    if (f === undefined) return undefined
    if (f.status === 429) this.stats.throttled++
    else this.stats.serverErrors++
    return f
  }

  /** Counts one POST of `operations` (a chunk) before validation. */
  countSubmit (operations: readonly unknown[]): void {
    this.stats.submits++
    countUnder(this.stats.chunkPosts, operationsDigest(operations), this.maxEntries * COUNTERS_PER_ENTRY)
  }

  /** How many times these exact operations were POSTed. */
  postsOf (operations: readonly unknown[]): number {
    return this.stats.chunkPosts[operationsDigest(operations)] ?? 0
  }

  /** Queues an accepted request as a task. */
  accept (resource: CliniaResource, operations: CliniaOperation[]): SimTask {
    const task: SimTask = { id: `bk_${newId()}`, resource, operations, receipts: null, polls: 0 }
    remember(this.tasks, task.id, task, this.maxEntries)
    this.#queue.push(task)
    this.stats.tasksCreated++
    const oldest = this.#queue[0]
    if (this.#queue.length > this.maxEntries && oldest !== undefined) this.#processThrough(oldest)
    return task
  }

  /** One status read: PENDING for the first `pendingPolls` reads, then processed (with every earlier task). */
  read (task: SimTask): void {
    this.stats.polls++
    task.polls++
    if (task.receipts === null && task.polls > (this.options.pendingPolls ?? 2)) this.#processThrough(task)
  }

  /** Cancels what a task has not processed yet: its operations get CANCELLED receipts. */
  cancel (taskId: string): void {
    const task = this.tasks.get(taskId)
    if (task === undefined || task.receipts !== null) return
    this.#queue = this.#queue.filter(t => t !== task)
    task.receipts = task.operations.map(op => ({ ...this.#pending(task.resource, op), status: 'CANCELLED' as const }))
  }

  /** What a receipt says before its operation is processed. */
  pendingReceipts (task: SimTask): SimReceipt[] {
    return task.operations.map(op => this.#pending(task.resource, op))
  }

  #pending (resource: CliniaResource, op: CliniaOperation): SimReceipt {
    const target = targetOf(op)
    const id = resource === 'resources' ? target.id as string | undefined : this.#relationshipId(target)
    return { action: op.action, ...(id === undefined ? {} : { id }), status: 'PENDING', targetType: resource === 'resources' ? 'RESOURCE' : 'RELATIONSHIP', type: String(target.type) }
  }

  #relationshipId (target: Record<string, unknown>): string | undefined {
    if (typeof target.id === 'string') return target.id
    const from = target.from as { id: string } | undefined
    const to = target.to as { id: string } | undefined
    return from === undefined || to === undefined ? undefined : `${from.id}.${to.id}`
  }

  #processThrough (task: SimTask): void {
    while (task.receipts === null) {
      const next = this.#queue.shift()
      if (next === undefined) return
      next.receipts = next.operations.map(op => this.#apply(next.resource, op))
    }
  }

  #apply (resource: CliniaResource, op: CliniaOperation): SimReceipt {
    const base = this.#pending(resource, op)
    const target = targetOf(op)
    const type = String(target.type)
    const done = (id: string): SimReceipt => ({ ...base, id, status: 'SUCCESS' })
    const failed = (code: number, errorType: string, message: string): SimReceipt => ({ ...base, error: failure(code, errorType, message), status: 'FAILURE' })
    if (resource === 'resources') {
      const id = typeof target.id === 'string' ? target.id : newId()
      const key = `${type}/${id}`
      if (op.action === 'CREATE' && this.resources.has(key)) return failed(409, 'ALREADY_EXISTS', `record with id '${id}' already exists`)
      if (op.action === 'DELETE') {
        if (!this.resources.delete(key)) return failed(404, 'NOT_FOUND', `record with id '${id}' not found`)
        return done(id)
      }
      remember(this.resources, key, target.data as Record<string, unknown>, this.maxRecords)
      return done(id)
    }
    const id = this.#relationshipId(target) ?? ''
    const key = `${type}/${id}`
    if (op.action === 'DELETE') {
      if (!this.relationships.delete(key)) return failed(404, 'NOT_FOUND', `relationship with id '${id}' not found`)
      return done(id)
    }
    const from = target.from as { type: string, id: string }
    const to = target.to as { type: string, id: string }
    if (!this.resources.has(`${from.type}/${from.id}`) || !this.resources.has(`${to.type}/${to.id}`)) {
      return failed(404, 'NOT_FOUND', 'a related record does not exist')
    }
    if (op.action === 'CREATE' && this.relationships.has(key)) return failed(409, 'ALREADY_EXISTS', `relationship with id '${id}' already exists`)
    remember(this.relationships, key, (target.data as Record<string, unknown> | undefined) ?? {}, this.maxRecords)
    return done(id)
  }
}
