/**
 * Request budgets counted in PostgreSQL, so every job of every replica sharing a set of upstream credentials
 * draws from one budget. Each attempt to take a request is one short transaction under an advisory lock on the
 * budget's key, on the database's clock (replicas' clocks may disagree; the database's is one). A replica makes its
 * attempts on one key one at a time; the lock orders those of different replicas.
 *
 * Why a table of our own rather than rate-limiter-flexible's PostgreSQL store: that library counts fixed windows
 * that start at a key's first request (not at the top of the clock hour, as DrChrono resets), has no sliding
 * window in its Postgres store, answers "refused, retry in N ms" with no queue, and so no fairness between the
 * clients waiting; DrChrono's hour plus burst ceiling and Cliniko's sliding minute would each need two limiters
 * and our own waiting loop around them anyway. What is left here is the loop, one lock and three small tables.
 *
 * Fairness: while requests wait, each waiting request keeps a row naming its client (renewed every couple of
 * seconds, forgotten after a few missed renewals). A free request goes to a waiter whose client has sent the fewest
 * requests in the budget's longest window: one client's 40-page job cannot hold another client's 1-page job
 * back for its whole run.
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import { REPORTED_WAIT_MS, budgetWaitMs, countedSince, windowRemaining, windowStart, type BudgetSpec, type BudgetTaker, type WindowUse } from '../lib/budget-windows.js'
import { Sql, query, sql, transaction, type Queryable } from './sql/sql.js'
import { untilAborted } from '../lib/abort.js'

/** What the store reports for metrics. */
export type BudgetEvent =
  | { type: 'granted', upstream: string, window: string, remaining: number }
  | { type: 'waited', upstream: string, seconds: number }

export interface PgBudgetOptions {
  /** Longest sleep between two looks at the budget; also how often a waiter renews its row. Default 2000. */
  recheckMs?: number
  /** A waiter's row not renewed for this long is gone (its job ended). Default 3 × recheckMs. */
  staleWaiterMs?: number
  /** How long a request steps back for another client's waiting request before looking again. Default 100. */
  yieldMs?: number
  observe?: (e: BudgetEvent) => void
}

type Attempt = { granted: true } | { granted: false, waitMs: number, reason: string }

export class PgBudgetStore {
  readonly #pool: pg.Pool
  readonly #recheckMs: number
  readonly #staleMs: number
  readonly #yieldMs: number
  readonly #observe: (e: BudgetEvent) => void
  /** Per budget key, the end of this process's last look at it: see {@link PgBudgetStore.#inTurn}. */
  readonly #turns = new Map<string, Promise<unknown>>()

  constructor (pool: pg.Pool, o: PgBudgetOptions = {}) {
    this.#pool = pool
    this.#recheckMs = o.recheckMs ?? 2000
    this.#staleMs = o.staleWaiterMs ?? 3 * this.#recheckMs
    this.#yieldMs = o.yieldMs ?? 100
    this.#observe = o.observe ?? (() => {})
  }

  async take (spec: BudgetSpec, taker: BudgetTaker | undefined, signal: AbortSignal): Promise<void> {
    const waiterId = randomUUID()
    let waited = false
    let told: { reason: string, until: number } | null = null
    try {
      for (;;) {
        signal.throwIfAborted()
        const attempt = await this.#inTurn(spec.key, signal, () => this.#attempt(spec, taker, waiterId))
        if (attempt.granted) return
        waited = true
        // Tell the job's readers of a wait worth telling, and again only when its end moves by more than a second.
        const until = Date.now() + attempt.waitMs
        if (told !== null ? told.reason !== attempt.reason || Math.abs(told.until - until) > 1000 : attempt.waitMs >= REPORTED_WAIT_MS) {
          told = { reason: attempt.reason, until }
          taker?.onWait?.(waiterId, { reason: attempt.reason, until: new Date(until) })
        }
        const slept = performance.now()
        try {
          await sleep(Math.min(attempt.waitMs, this.#recheckMs), undefined, { signal })
        } finally {
          // Counted as it passes, so an hour's wait shows while it lasts, and a cancelled one counts too.
          this.#observe({ type: 'waited', upstream: spec.upstream, seconds: (performance.now() - slept) / 1000 })
        }
      }
    } catch (err) {
      if (waited) await this.#forget(spec.key, waiterId).catch(() => {})
      throw signal.aborted ? signal.reason : err
    } finally {
      if (told !== null) taker?.onWait?.(waiterId, null)
    }
  }

  async pause (spec: BudgetSpec, epochMs: number): Promise<void> {
    // As a delay on the database's clock: this process's clock may differ from the other replicas'.
    const ms = Math.max(0, epochMs - Date.now())
    await query(this.#pool, sql`
      INSERT INTO upstream_budget_pauses (key, paused_until)
      VALUES (${spec.key}, clock_timestamp() + make_interval(secs => ${ms / 1000}))
      ON CONFLICT (key) DO UPDATE SET paused_until = greatest(upstream_budget_pauses.paused_until, excluded.paused_until)`)
  }

  /**
   * Runs this process's looks at one budget one after another. Looks at once from one process would only meet each
   * other's advisory lock: each refused one is a transaction that writes a waiter row, and a sleep of 5-25 ms for a
   * request the budget had room for. With ten pages of a job in flight that was about three refused looks for every
   * request sent. A look takes a few ms; the advisory lock still orders the looks of different replicas. A request
   * whose job stops while it waits for its turn leaves at once, and its look is skipped when the turn comes.
   */
  async #inTurn<T> (key: string, signal: AbortSignal, look: () => Promise<T>): Promise<T> {
    const mine = (this.#turns.get(key) ?? Promise.resolve()).then(async () => {
      signal.throwIfAborted()
      return await look()
    })
    const done = mine.then(() => {}, () => {})
    this.#turns.set(key, done)
    try {
      return await untilAborted(mine, signal)
    } finally {
      if (this.#turns.get(key) === done) this.#turns.delete(key)
    }
  }

  /** One look at the budget: a request is counted and granted, or the waiter's row renewed. */
  async #attempt (spec: BudgetSpec, taker: BudgetTaker | undefined, waiterId: string): Promise<Attempt> {
    const result = await transaction(this.#pool, async db => {
      // Another replica's look at the budget holds the lock for a few ms: step back rather than hold one of the
      // pool's connections waiting for it (page saves and lease heartbeats share the pool).
      const { rows: [lock] } = await query<{ held: boolean }>(db, sql`
        SELECT pg_try_advisory_xact_lock(hashtextextended(${`upstream-budget:${spec.key}`}, 0)) AS held`)
      if (lock?.held !== true) {
        // Known as waiting all the same: the replica that holds the lock gives the next request to the least served.
        if (taker !== undefined) await this.#waiting(db, spec.key, waiterId, taker.clientId)
        return { granted: false as const, waitMs: 5 + Math.floor(Math.random() * 20), reason: 'its turn' }
      }
      const look = await this.#look(db, spec, taker?.clientId ?? '')
      const now = look.now
      let { waitMs, reason } = budgetWaitMs(spec, look.uses, look.paused ?? 0, now)
      if (waitMs <= 0 && taker !== undefined && look.othersWaiting && await this.#otherClientsTurn(db, spec, taker.clientId, now)) {
        waitMs = this.#yieldMs
        reason = `its turn after another client's job (${spec.windows[0]?.label ?? spec.upstream})`
      }
      if (waitMs > 0) {
        if (taker !== undefined) await this.#waiting(db, spec.key, waiterId, taker.clientId)
        return { granted: false as const, waitMs, reason }
      }
      // One statement: count the request, forget what no window counts any more, and this request's waiter row.
      await query(db, sql`
        WITH old AS (DELETE FROM upstream_budget_grants WHERE key = ${spec.key} AND sent_at < ${new Date(countedSince(spec, now))}),
          done AS (DELETE FROM upstream_budget_waiters WHERE key = ${spec.key} AND waiter_id = ${waiterId})
        INSERT INTO upstream_budget_grants (key, client_id, sent_at) VALUES (${spec.key}, ${taker?.clientId ?? ''}, ${new Date(now)})`)
      const remaining = spec.windows.map((w, i) => ({
        window: w.name,
        remaining: windowRemaining(w, { count: (look.uses[i]?.count ?? 0) + 1, limitthNewest: null }),
      }))
      return { granted: true as const, remaining }
    })
    if (result.granted) {
      for (const r of result.remaining) this.#observe({ type: 'granted', upstream: spec.upstream, ...r })
      return { granted: true }
    }
    return result
  }

  /**
   * One look at the budget, in one statement on the database's clock: the time, any pause, what each window
   * holds (counted, never fetched: a window may hold thousands of requests), and whether another client's request
   * waits. Only a full sliding window needs one more statement: the send time that must leave it first.
   */
  async #look (db: Queryable, spec: BudgetSpec, clientId: string): Promise<{ now: number, paused: number | null, uses: WindowUse[], othersWaiting: boolean }> {
    const counts = spec.windows.map((w, i) => {
      const ms = w.windowMs
      const after = w.kind === 'clock'
        ? sql`g.sent_at >= to_timestamp(floor(extract(epoch FROM c.now) * 1000 / ${ms}) * ${ms} / 1000.0)`
        : sql`g.sent_at > c.now - make_interval(secs => ${ms / 1000})`
      return sql`, (SELECT count(*)::int FROM upstream_budget_grants g WHERE g.key = ${spec.key} AND ${after}) AS ${new Sql([`n${i}`], [])}`
    }).reduce((all, c) => sql`${all}${c}`, sql``)
    const { rows: [row] } = await query<Record<string, number | boolean | null>>(db, sql`
      WITH c AS (SELECT clock_timestamp() AS now)
      SELECT (extract(epoch FROM c.now) * 1000)::float8 AS now,
        (SELECT (extract(epoch FROM paused_until) * 1000)::float8 FROM upstream_budget_pauses WHERE key = ${spec.key}) AS paused,
        EXISTS (SELECT 1 FROM upstream_budget_waiters WHERE key = ${spec.key} AND client_id <> ${clientId}) AS others
        ${counts}
      FROM c`)
    const now = row!.now as number
    const uses: WindowUse[] = []
    for (const [i, w] of spec.windows.entries()) {
      const count = row![`n${i}`] as number
      let limitthNewest: number | null = null
      if (count >= w.limit && w.kind === 'sliding') {
        const { rows: [edge] } = await query<{ t: number }>(db, sql`
          SELECT (extract(epoch FROM sent_at) * 1000)::float8 AS t FROM upstream_budget_grants
          WHERE key = ${spec.key} AND sent_at > ${new Date(windowStart(w, now))} ORDER BY sent_at DESC OFFSET ${w.limit - 1} LIMIT 1`)
        limitthNewest = edge?.t ?? null
      }
      uses.push({ count, limitthNewest })
    }
    return { now, paused: row!.paused as number | null, uses, othersWaiting: row!.others === true }
  }

  /** Whether a waiting request of another client, less served in the budget's longest window, should go first. */
  async #otherClientsTurn (db: Queryable, spec: BudgetSpec, clientId: string, now: number): Promise<boolean> {
    await query(db, sql`DELETE FROM upstream_budget_waiters WHERE key = ${spec.key} AND seen_at < ${new Date(now - this.#staleMs)}`)
    const { rows } = await query<{ client: string }>(db, sql`
      SELECT DISTINCT client_id AS client FROM upstream_budget_waiters WHERE key = ${spec.key} AND client_id <> ${clientId}`)
    if (rows.length === 0) return false
    const clients = [clientId, ...rows.map(r => r.client)]
    const { rows: counts } = await query<{ client: string, n: number }>(db, sql`
      SELECT client_id AS client, count(*)::int AS n FROM upstream_budget_grants
      WHERE key = ${spec.key} AND sent_at >= ${new Date(countedSince(spec, now))} AND client_id = ANY(${clients}::text[])
      GROUP BY client_id`)
    const served = (client: string): number => counts.find(c => c.client === client)?.n ?? 0
    const mine = served(clientId)
    return rows.some(r => served(r.client) < mine)
  }

  /** Records (or renews) a waiting request of `clientId`. */
  async #waiting (db: Queryable, key: string, waiterId: string, clientId: string): Promise<void> {
    await query(db, sql`
      INSERT INTO upstream_budget_waiters (key, waiter_id, client_id, seen_at)
      VALUES (${key}, ${waiterId}, ${clientId}, clock_timestamp())
      ON CONFLICT (key, waiter_id) DO UPDATE SET seen_at = excluded.seen_at`)
  }

  async #forget (key: string, waiterId: string, db: Queryable = this.#pool): Promise<void> {
    await query(db, sql`DELETE FROM upstream_budget_waiters WHERE key = ${key} AND waiter_id = ${waiterId}`)
  }
}
