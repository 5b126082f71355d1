/** What the client reports for metrics; never carries headers, query strings or bodies. */
export type UpstreamEvent =
  | { type: 'response', upstream: string, method: string, url: string, attempt: number, status: number, durationMs: number }
  | { type: 'network_error', upstream: string, method: string, url: string, attempt: number, code: string, durationMs: number }
  | { type: 'retry', upstream: string, method: string, url: string, attempt: number, delayMs: number, reason: string }
