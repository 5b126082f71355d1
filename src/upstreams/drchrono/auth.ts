/**
 * DrChrono's OAuth2 bearer tokens for one adapter instance. Every request carries the current access token.
 *
 * DrChrono rotates the refresh token on every use (each one works once), so with refresh credentials the newest
 * pair lives in the shared credential store, where restarts and other replicas find it:
 * - the configured pair seeds it the first time, and again whenever the configured values change (an operator
 *   pasted a fresh pair); otherwise the stored pair, newer, wins;
 * - a refresh runs under the store's lock: the pair is read again there, and when another replica already
 *   replaced the token this one was using, its pair is taken without refreshing; otherwise the stored refresh
 *   token is spent and the new pair written before the lock is released;
 * - a pair whose expiry is known is refreshed shortly before it (tokens.ts), and a 401 still triggers a refresh;
 * - in this process, every request that needs a refresh at the same time shares one.
 * Without refresh credentials nothing is stored: a 401 fails the job. Tokens never appear in errors or logs.
 */
import { createHash } from 'node:crypto'
import type { CredentialStore, StoredCredential } from '../credential-store.js'
import type { UpstreamClient, UpstreamRequest, UpstreamResponse } from '../http.js'
import type { BudgetSpec, BudgetStore, BudgetTaker } from '../request-budget.js'
import { untilAborted } from '../../lib/abort.js'
import { sleep } from '../../lib/time.js'
import type { UpstreamServices } from '../types.js'
import { UpstreamError } from '../../domain/errors.js'
import { isDue, oauthError, pairFromAnswer, pairFromStored, seedOf, storedValue, type TokenPair } from './tokens.js'

export interface DrchronoCredentials {
  baseUrl: string
  accessToken: string
  refreshToken?: string
  clientId?: string
  clientSecret?: string
  /** Per-attempt timeout for every request; the client's default when absent. */
  requestTimeoutMs?: number
  /** DrChrono's budget per API application: requests per clock hour (UTC; default 500)… */
  requestsPerHour?: number
  /** …and the ceiling per second under its burst throttle of about 10 (default 8). */
  requestsPerSecond?: number
}

/** A request to DrChrono; `taker` is the job spending the application's budget (none for a token refresh). */
export type DrchronoRequest = Omit<UpstreamRequest, 'upstream' | 'budget'> & { taker?: BudgetTaker | undefined }

/**
 * DrChrono's limits count per API application, whoever's job sends: one budget per OAuth client (or, without
 * refresh credentials, per configured token), shared by every job and replica. The key is a digest.
 */
export function drchronoBudget (creds: DrchronoCredentials): BudgetSpec {
  const perSecond = creds.requestsPerSecond ?? 8
  const application = createHash('sha256').update(`${creds.baseUrl}\u0000${creds.clientId ?? creds.accessToken}`).digest('hex')
  return {
    upstream: 'drchrono',
    key: `drchrono:${application}`,
    windows: [
      { limit: creds.requestsPerHour ?? 500, windowMs: 3_600_000, kind: 'clock', name: 'hour', label: "DrChrono's hourly request budget" },
      { limit: perSecond, windowMs: 1000, kind: 'sliding', name: 'second', label: "DrChrono's per-second request ceiling" },
      // Half of it per half second: a second's requests go in two bursts rather than one, so requests that leave
      // late (a busy event loop, a slow connection) cannot pile onto the next second's burst at DrChrono's end.
      { limit: Math.max(1, Math.ceil(perSecond / 2)), windowMs: 500, kind: 'sliding', name: 'half-second', label: "DrChrono's per-second request ceiling" },
    ],
  }
}

/** The name of DrChrono's tokens in the credential store. */
export const DRCHRONO_CREDENTIAL = 'drchrono'

const unauthorized = (why: string): UpstreamError => new UpstreamError('upstream_unauthorized', why, 401)

/** Renewals one request may go through after 401s when other replicas keep rotating the pair under it. */
const MAX_RENEWALS = 5

/** A refresh that broke off on the network may or may not have reached DrChrono: the job tries again later. */
async function transientOnNetworkFailure<T> (request: Promise<T>): Promise<T> {
  try {
    return await request
  } catch (err) {
    if (err instanceof UpstreamError && (err.code === 'upstream_unavailable' || err.code === 'upstream_timeout')) {
      throw new Error(`DrChrono's token endpoint could not be reached (${err.code}); the job will try again`)
    }
    throw err
  }
}

/** The longest a refresh may take: it holds the credential's lock (and a database connection) meanwhile. */
const REFRESH_TIMEOUT_MS = 15_000

/** Why a pair is being renewed: DrChrono refused it, or it is about to expire. */
type Reason = 'refused' | 'expiring'

export class DrchronoAuth {
  readonly #client: UpstreamClient
  readonly #creds: DrchronoCredentials
  readonly #store: CredentialStore
  readonly #budgets: BudgetStore
  readonly #budget: BudgetSpec
  /** Client credentials and the configured pair, when refreshing is possible at all. */
  readonly #refresh: { clientId: string, clientSecret: string, configured: TokenPair, seed: string } | null
  #tokens: TokenPair
  #loaded = false
  #loading: Promise<void> | null = null
  #renewing: Promise<boolean> | null = null
  /** A pair this process refreshed (spending the stored refresh token) whose write failed: stored at the next chance. */
  #unsaved: TokenPair | null = null

  constructor (creds: DrchronoCredentials, client: UpstreamClient, services: Pick<UpstreamServices, 'credentials' | 'budgets'>) {
    this.#creds = creds
    this.#client = client
    this.#store = services.credentials
    this.#budgets = services.budgets
    this.#budget = drchronoBudget(creds)
    const { refreshToken, clientId, clientSecret } = creds
    const configured: TokenPair = { accessToken: creds.accessToken, refreshToken: refreshToken ?? '', expiresAt: null, refreshAt: null }
    this.#tokens = configured
    this.#refresh = refreshToken === undefined || clientId === undefined || clientSecret === undefined
      ? null
      : { clientId, clientSecret, configured, seed: seedOf({ baseUrl: creds.baseUrl, clientId, accessToken: creds.accessToken, refreshToken }) }
  }

  /** Resolves once no renewal of this process is under way (its outcome, success or not, does not matter here). */
  async settled (): Promise<void> {
    await this.#renewing?.catch(() => {})
  }

  /** Sends an authenticated request; a 401 is answered by one shared token refresh and one more try. */
  async send (req: DrchronoRequest): Promise<UpstreamResponse> {
    if (this.#refresh !== null) {
      await this.#load(req.signal)
      const current = this.#tokens.accessToken
      if (isDue(this.#tokens, Date.now())) await this.#renew(current, 'expiring', req.signal).catch(err => this.#postpone(current, err, req.signal))
    }
    let used = this.#tokens.accessToken
    const res = await this.#send(req, used)
    if (res.status !== 401) return res
    if (this.#refresh === null) {
      throw unauthorized('DrChrono refused the access token (401) and no refresh token and client credentials are configured')
    }
    // Another replica may rotate the pair between this one taking it and using it (each refresh kills the access
    // token before it; a request may wait for its budget meanwhile): a 401 for a token that is no longer the newest
    // is one more renewal (taking the newest), not a failure. A token refused while it is still the newest, right
    // after its own refresh, fails the job, as do refusals that never end.
    for (let renewals = 1; ; renewals++) {
      const refreshed = await this.#renew(used, 'refused', req.signal)
      used = this.#tokens.accessToken
      const again = await this.#send(req, used)
      if (again.status !== 401) return again
      if (renewals >= MAX_RENEWALS || (refreshed && !await this.#replacedSince(used, req.signal))) {
        throw unauthorized('DrChrono refused the freshly refreshed access token (401)')
      }
    }
  }

  /** Whether the stored pair has moved on from `used` (another replica refreshed after it). */
  async #replacedSince (used: string, signal: AbortSignal): Promise<boolean> {
    const stored = this.#usable(await untilAborted(this.#storeStep(() => this.#store.read(DRCHRONO_CREDENTIAL)), signal))
    return stored !== null && stored.accessToken !== used
  }

  #send ({ taker, ...req }: DrchronoRequest, token: string): Promise<UpstreamResponse> {
    return this.#client.request({
      timeoutMs: this.#creds.requestTimeoutMs,
      ...req,
      upstream: 'drchrono',
      budget: { store: this.#budgets, spec: this.#budget, taker },
      headers: { ...req.headers, accept: 'application/json', authorization: `Bearer ${token}` },
    })
  }

  /** Once per instance, before the first request: the stored pair, when it was seeded from this configuration. */
  async #load (signal: AbortSignal): Promise<void> {
    if (this.#loaded) return
    this.#loading ??= this.#storeStep(() => this.#store.read(DRCHRONO_CREDENTIAL)).then(stored => {
      this.#tokens = this.#usable(stored) ?? this.#tokens
      this.#loaded = true
    }).finally(() => { this.#loading = null })
    await untilAborted(this.#loading, signal)
  }

  /** The stored pair if it grew from the configured one; null for none, or one from an earlier configuration. */
  #usable (stored: StoredCredential | null): TokenPair | null {
    if (stored === null || stored.seed !== this.#refresh?.seed) return null
    return pairFromStored(stored.value)
  }

  /**
   * Replaces the pair that `used` belongs to; requests of this process that need it at once share one renewal.
   * True when that meant a refresh (a pair DrChrono has just issued), false when a newer pair was taken instead.
   */
  async #renew (used: string, reason: Reason, signal: AbortSignal): Promise<boolean> {
    // Another request already replaced the token this one used: just use the new one.
    if (this.#tokens.accessToken !== used) return false
    this.#renewing ??= this.#renewShared(used, reason).finally(() => { this.#renewing = null })
    return await untilAborted(this.#renewing, signal)
  }

  /**
   * A refresh ahead of expiry failed: while the token still works, the request goes on with it and the next try
   * comes a little later (at most a minute, always before the expiry); a 401 then refreshes as usual and fails the
   * job if the refresh still fails. Otherwise, or when the job was cancelled, the error stands.
   */
  #postpone (used: string, err: unknown, signal: AbortSignal): void {
    const { accessToken, expiresAt } = this.#tokens
    const left = expiresAt === null ? 0 : expiresAt - Date.now()
    if (signal.aborted || accessToken !== used || left <= 0) throw err
    this.#tokens = { ...this.#tokens, refreshAt: Date.now() + Math.min(60_000, left / 2) }
  }

  /** Under the store's lock: take the pair another replica stored, or refresh and store the new pair. */
  async #renewShared (used: string, reason: Reason): Promise<boolean> {
    const refresh = this.#refresh
    if (refresh === null) return false
    let refreshed = false
    await this.#storeStep(() => this.#store.update(DRCHRONO_CREDENTIAL, async current => {
      // A pair this process refreshed but failed to store is newer than the row, whose refresh token it spent.
      const stored = this.#unsaved ?? this.#usable(current)
      const pair = stored ?? refresh.configured
      if (pair.accessToken !== used && !(reason === 'expiring' && isDue(pair, Date.now()))) {
        // Replaced since this process last looked (another replica refreshed, or the configuration is new).
        this.#tokens = pair
        return this.#unsaved === null ? undefined : { seed: refresh.seed, value: storedValue(pair) }
      }
      const next = await this.#refreshWith(pair.refreshToken, stored !== null)
      // Before the write commits: the old pair is dead either way, and this process keeps working if it fails.
      this.#tokens = next
      this.#unsaved = next
      refreshed = true
      return { seed: refresh.seed, value: storedValue(next) }
    }).then(() => { this.#unsaved = null }, async (err: unknown) => {
      // Refreshed, then the write failed: the pair is in no one's hands but this process's. Store it before
      // anything else happens (a failure before the refresh leaves any older unsaved pair to the next renewal).
      if (refreshed && await this.#storeUnsaved(refresh.seed)) return
      throw err
    }))
    return refreshed
  }

  /** Writes the unsaved pair, trying a few times (a database that restarts); true once it is stored. */
  async #storeUnsaved (seed: string): Promise<boolean> {
    for (let attempt = 1; attempt <= 4 && this.#unsaved !== null; attempt++) {
      await sleep(500 * 2 ** attempt)
      const pair = this.#unsaved
      try {
        await this.#store.update(DRCHRONO_CREDENTIAL, async () => ({ seed, value: storedValue(pair) }))
        this.#unsaved = null
        return true
      } catch { /* still not stored: the next renewal tries again */ }
    }
    return false
  }

  /** Spends `refreshToken` at `/o/token/`. Refusals become job errors that say what to do. */
  async #refreshWith (refreshToken: string, fromStore: boolean): Promise<TokenPair> {
    const refresh = this.#refresh
    if (refresh === null) throw unauthorized('DrChrono refused the access token (401) and no refresh credentials are configured')
    const res = await transientOnNetworkFailure(this.#client.request({
      method: 'POST',
      url: new URL('o/token/', `${this.#creds.baseUrl.replace(/\/+$/, '')}/`),
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'refresh_token', refresh_token: refreshToken, client_id: refresh.clientId, client_secret: refresh.clientSecret,
      }).toString(),
      // Not tied to the job that needed it: other jobs (of this and other replicas) wait for this same refresh.
      signal: new AbortController().signal,
      // It runs inside the credential's transaction: short, and sent once. A retry of a refresh DrChrono may have
      // acted on (a proxy's 502, a 429 after the fact) would spend the rotated, now dead refresh token.
      timeoutMs: Math.min(this.#creds.requestTimeoutMs ?? REFRESH_TIMEOUT_MS, REFRESH_TIMEOUT_MS),
      maxAttempts: 1,
      retryable: () => false,
      upstream: 'drchrono',
      // Not budgeted: the token endpoint is django-oauth-toolkit's view, outside the API's throttles, and this
      // runs holding the credential lock, which must not wait out an hourly budget.
      // Refresh tokens rotate: a refresh that reached DrChrono but whose answer was lost must not be replayed
      // with the now-dead refresh token.
      idempotent: false,
    }))
    if (res.status === 200) {
      const pair = pairFromAnswer(res, refreshToken, Date.now())
      if (pair === null) throw new UpstreamError('invalid_upstream_response', 'DrChrono answered the token refresh without an access token', 200)
      return pair
    }
    // Not the job's fault and perhaps not the token's: the job is retried later (see the worker), and a refresh token
    // this answer did spend is refused then, with the instructions below.
    if (res.status === 429 || res.status >= 500) throw new Error(`DrChrono's token endpoint answered ${res.status}; the job will try again`)
    // RFC 6749 §5.2: 400 for invalid_grant (django-oauth-toolkit's answer); some servers send 401. Either is a refusal.
    const code = oauthError(res) ?? String(res.status)
    if (code === 'invalid_client') {
      throw unauthorized('DrChrono refused the client credentials (invalid_client): check DRCHRONO_CLIENT_ID and DRCHRONO_CLIENT_SECRET and restart')
    }
    throw unauthorized(`DrChrono refused the ${fromStore ? 'stored' : 'configured'} refresh token (${code}): ` +
      'set DRCHRONO_REFRESH_TOKEN (and DRCHRONO_ACCESS_TOKEN) to a fresh pair from DrChrono\'s OAuth flow and restart; ' +
      'the gateway stores the rotated tokens from then on')
  }

  /**
   * A step on the credential store. A credential this gateway cannot open (another TOKEN_ENCRYPTION_KEY, an
   * altered row, no key) fails the job with the store's instructions; it does not pass by retrying. Any other
   * error (the database restarting) is left to the engine, which retries the job.
   */
  async #storeStep<T> (step: () => Promise<T>): Promise<T> {
    try {
      return await step()
    } catch (err) {
      // Matched by name: the store is the database's, and the upstreams do not import it.
      if (err instanceof Error && err.name === 'CredentialStoreError') throw new UpstreamError('internal_error', err.message)
      throw err
    }
  }
}
