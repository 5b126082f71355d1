/**
 * The OAuth side of the DrChrono simulator's state: the token pair django-oauth-toolkit rotates at every refresh,
 * its expiry, and what tests steer refreshes with (a lost answer, requests held to line up concurrent refreshes).
 * The state extends it, so a test reads and sets `state.accessToken` and `state.refreshToken` directly.
 */
import { randomUUID } from 'node:crypto'
import { Countdown } from '../../simulator-kit/injected-faults.js'
import { SANDBOX_CREDENTIALS, type DrchronoSimulatorOptions } from './options.js'
import type { SimulatorStats } from './stats.js'

export abstract class DrchronoTokens {
  abstract readonly options: Readonly<DrchronoSimulatorOptions>
  abstract stats: SimulatorStats
  abstract now (): number
  accessToken = ''
  refreshToken = ''
  /** When the current access token stops working (the clock of `now()`); null: until revoked. */
  accessTokenExpiresAt: number | null = null
  /** Token requests waiting for {@link holdTokenRequests} to be released. */
  waitingTokenRequests = 0
  #hold: { promise: Promise<void>, release: () => void } | null = null
  readonly #lostAnswers = new Countdown()

  /** The configured tokens, without expiry; held requests let go, no answer to lose. */
  protected resetTokens (): void {
    this.accessToken = this.options.accessToken ?? SANDBOX_CREDENTIALS.accessToken
    this.refreshToken = this.options.refreshToken ?? SANDBOX_CREDENTIALS.refreshToken
    this.accessTokenExpiresAt = null
    this.#hold?.release()
    this.#hold = null
    this.#lostAnswers.arm(0)
  }

  /** The current access token stops working, as when its 48 hours are over. */
  revokeAccessToken (): void {
    this.accessToken = `revoked-${randomUUID()}`
  }

  /** Whether an /api request with this bearer token is let in: the current access token, before its expiry. */
  acceptsAccessToken (token: string): boolean {
    return token === this.accessToken && (this.accessTokenExpiresAt === null || this.now() < this.accessTokenExpiresAt)
  }

  /**
   * A refresh with `refreshToken`: a new pair when it is the current refresh token, which then stops working (each
   * works once, the configured one included, as django-oauth-toolkit rotates them), with the old access token.
   * Null when it is not the current one: `invalid_grant`.
   */
  rotateTokens (refreshToken: string): { accessToken: string, refreshToken: string, expiresIn: number } | null {
    if (refreshToken !== this.refreshToken) {
      this.stats.failedRefreshes++
      return null
    }
    const expiresIn = this.options.tokenExpiresInSeconds ?? 172_800
    this.accessToken = `access-${randomUUID()}`
    this.refreshToken = `refresh-${randomUUID()}`
    this.accessTokenExpiresAt = this.now() + expiresIn * 1000
    this.stats.tokenRefreshes++
    return { accessToken: this.accessToken, refreshToken: this.refreshToken, expiresIn }
  }

  /**
   * The next `n` refreshes rotate the tokens and then lose their answer (a proxy's 502): the caller never learns
   * the new pair, and its refresh token is spent.
   */
  loseTokenAnswers (n: number): void {
    this.#lostAnswers.arm(n)
  }

  /** Whether this refresh's answer is lost (see {@link loseTokenAnswers}). */
  takeLostTokenAnswer (): boolean {
    return this.#lostAnswers.take()
  }

  /** Token requests wait from now until the returned function is called (a test lines up concurrent refreshes). */
  holdTokenRequests (): () => void {
    let release = (): void => {}
    const promise = new Promise<void>(resolve => { release = resolve })
    const hold = { promise, release }
    this.#hold = hold
    return () => {
      if (this.#hold === hold) this.#hold = null
      release()
    }
  }

  /** Resolves when token requests may proceed (see {@link holdTokenRequests}). */
  async tokenGate (): Promise<void> {
    const hold = this.#hold
    if (hold === null) return
    this.waitingTokenRequests++
    try {
      await hold.promise
    } finally {
      this.waitingTokenRequests--
    }
  }
}
