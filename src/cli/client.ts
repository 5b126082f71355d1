/**
 * The command line's HTTP client: the gateway's URL and client key from the environment, Node's fetch, and every
 * refusal turned into one {@link GatewayRefusal} that names the problem's `code` and `detail` (exit 3).
 * The command line is a client of the HTTP API only: nothing here knows the gateway's code.
 */
import { CliError, EXIT, usageError } from './exit.js'

export const DEFAULT_URL = 'http://localhost:3000'

/** An RFC 9457 problem as the gateway sends it (docs/API.md, "Errors"). */
export interface Problem {
  code?: string
  status?: number
  title?: string
  detail?: string
  errors?: Array<{ in?: string, pointer?: string, detail?: string }>
}

/** The gateway answered, but not with success: its problem, and exit 3 unless a command decides otherwise. */
export class GatewayRefusal extends CliError {
  constructor (readonly status: number, readonly problem: Problem, what: string) {
    const lines = [`${what}: ${status} ${problem.code ?? 'unknown_problem'}: ${problem.detail ?? problem.title ?? 'no detail'}`]
    for (const e of problem.errors ?? []) lines.push(`  ${e.in ?? ''} ${e.pointer ?? ''}: ${e.detail ?? ''}`.trimEnd())
    super(EXIT.gateway, lines.join('\n'))
    this.name = 'GatewayRefusal'
  }
}

/** The network-level reason of a failed fetch (ECONNREFUSED, ENOTFOUND, UND_ERR_SOCKET…), or its message. */
function networkReason (err: unknown): string {
  let e: unknown = err
  while (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
    if (e.cause === undefined) return e.message
    e = e.cause
  }
  return String(err)
}

export interface RequestOptions {
  body?: string
  headers?: Record<string, string>
  signal?: AbortSignal
}

export class GatewayClient {
  readonly baseUrl: string
  readonly #key: string | undefined

  constructor (baseUrl: string, key: string | undefined) {
    let url: URL
    try {
      url = new URL(baseUrl)
    } catch {
      throw usageError(`BULK_GATEWAY_URL is not a URL: ${JSON.stringify(baseUrl)}`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usageError(`BULK_GATEWAY_URL must be an http(s) URL, not ${url.protocol}`)
    // A base URL may carry a path prefix (a gateway behind a proxy): the API's paths go below it.
    this.baseUrl = url.href.replace(/\/+$/, '')
    this.#key = key === undefined || key === '' ? undefined : key
  }

  /** The client of BULK_GATEWAY_URL (default http://localhost:3000) and BULK_GATEWAY_KEY. */
  static fromEnv (env: NodeJS.ProcessEnv = process.env): GatewayClient {
    const url = env.BULK_GATEWAY_URL
    return new GatewayClient(url === undefined || url === '' ? DEFAULT_URL : url, env.BULK_GATEWAY_KEY)
  }

  /** A 2xx response, or a thrown CliError: {@link GatewayRefusal} for an answer, exit 3 for a network failure. */
  async request (method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers }
    if (this.#key !== undefined) headers.authorization = `Bearer ${this.#key}`
    if (opts.body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(this.baseUrl + path, { method, headers, body: opts.body, signal: opts.signal, redirect: 'error' })
    } catch (err) {
      if (opts.signal?.aborted === true) throw err
      throw new CliError(EXIT.gateway, `cannot reach the gateway at ${this.baseUrl} (${method} ${path}): ${networkReason(err)}`)
    }
    if (res.ok) return res
    const text = await res.text().catch(() => '')
    let problem: Problem = {}
    try {
      const parsed: unknown = JSON.parse(text)
      if (typeof parsed === 'object' && parsed !== null) problem = parsed as Problem
    } catch {
      problem = { detail: text.slice(0, 200) }
    }
    throw new GatewayRefusal(res.status, problem, `the gateway refused ${method} ${path}`)
  }

  /** A 2xx response's JSON body. */
  async json<T> (method: string, path: string, opts: RequestOptions = {}): Promise<{ body: T, res: Response }> {
    const res = await this.request(method, path, opts)
    let text = ''
    try {
      text = await res.text()
      return { body: JSON.parse(text) as T, res }
    } catch (err) {
      throw new CliError(EXIT.gateway, `the gateway's answer to ${method} ${path} is not JSON: ${networkReason(err)}`)
    }
  }
}

/** Path segment for a job id typed by a user (encoded: an id is a UUID, anything else answers 404). */
export const jobPath = (id: string): string => `/jobs/${encodeURIComponent(id)}`
