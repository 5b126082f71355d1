/** A DrChrono simulator on its own loopback port, and the gateway environment that points at it. */
import { SANDBOX_CREDENTIALS, startDrchronoSimulator, type DrchronoSimulatorOptions, type RunningDrchronoSimulator } from '../../src/upstreams/drchrono/simulator/index.js'

interface TestLike { teardown (fn: () => unknown): void }

export async function startDrchrono (t: TestLike, options: DrchronoSimulatorOptions = {}): Promise<RunningDrchronoSimulator> {
  const sim = await startDrchronoSimulator({ seed: 7, inProgressPolls: 1, ...options })
  t.teardown(() => sim.close())
  return sim
}

/** Gateway variables for a simulator; `refresh` adds the refresh credentials. */
export function drchronoEnv (sim: RunningDrchronoSimulator, opts: { refresh?: boolean, token?: string } = {}): Record<string, string> {
  return {
    DRCHRONO_BASE_URL: sim.url,
    DRCHRONO_ACCESS_TOKEN: opts.token ?? SANDBOX_CREDENTIALS.accessToken,
    DRCHRONO_POLL_INTERVAL_MS: '50',
    ...(opts.refresh === true
      ? {
          DRCHRONO_REFRESH_TOKEN: SANDBOX_CREDENTIALS.refreshToken,
          DRCHRONO_CLIENT_ID: SANDBOX_CREDENTIALS.clientId,
          DRCHRONO_CLIENT_SECRET: SANDBOX_CREDENTIALS.clientSecret,
        }
      : {}),
  }
}
