/**
 * `submit`: a `POST /jobs` body from a file (`--body FILE`, `-` for stdin) or from flags (`--upstream`,
 * `--resource`, `--param`). A body file is sent as its bytes (checked to be JSON first, so a typo is exit 2, not a
 * round trip); flags build the body.
 */
import { readFile } from 'node:fs/promises'
import { jobPath, type GatewayClient } from './client.js'
import { usageError } from './exit.js'
import type { JobView } from './job-view.js'

export interface SubmitOptions {
  body?: string
  upstream?: string
  resource?: string
  param?: string[]
  idempotencyKey?: string
  json?: boolean
}

async function readStdin (): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * One `--param`: `key=value` gives the string `value`; `key:=json` gives a JSON value (`page_size:=500`,
 * `verbose:=true`, `ids:=[1,2]`), as HTTPie writes them. Params are typed by the upstream's schema, so a number
 * or a boolean must be given as JSON.
 */
export function parseParam (text: string): [string, unknown] {
  const match = /^([^=:]+)(:?=)([\s\S]*)$/.exec(text)
  if (match === null) throw usageError(`--param ${JSON.stringify(text)}: write key=value (a string) or key:=json (a number, boolean, array…)`)
  const [, key = '', op, value = ''] = match
  if (op === '=') return [key, value]
  try {
    return [key, JSON.parse(value)]
  } catch {
    throw usageError(`--param ${key}:=…: ${JSON.stringify(value)} is not JSON (use ${key}=… for a string)`)
  }
}

/** The body text to send. */
export async function submitBody (opts: SubmitOptions): Promise<string> {
  const fromFlags = opts.upstream !== undefined || opts.resource !== undefined || (opts.param ?? []).length > 0
  if (opts.body !== undefined) {
    if (fromFlags) throw usageError('give the job either as --body FILE or as --upstream, --resource and --param, not both')
    let text: string
    try {
      text = opts.body === '-' ? await readStdin() : await readFile(opts.body, 'utf8')
    } catch (err) {
      throw usageError(`cannot read the body ${opts.body === '-' ? 'from stdin' : `file ${opts.body}`}: ${(err as Error).message}`)
    }
    try {
      JSON.parse(text)
    } catch (err) {
      throw usageError(`the body ${opts.body === '-' ? 'on stdin' : `in ${opts.body}`} is not JSON: ${(err as Error).message}`)
    }
    return text
  }
  if (opts.upstream === undefined || opts.resource === undefined) {
    throw usageError('submit needs --body FILE (or - for stdin), or --upstream and --resource (with --param key=value as needed)')
  }
  const params: Record<string, unknown> = {}
  for (const p of opts.param ?? []) {
    const [key, value] = parseParam(p)
    params[key] = value
  }
  return JSON.stringify({ upstream: opts.upstream, resource: opts.resource, params })
}

/** Submits the job; prints its id (or, with --json, the job view as the gateway sent it). */
export async function submit (client: GatewayClient, opts: SubmitOptions): Promise<void> {
  const body = await submitBody(opts)
  const headers: Record<string, string> = {}
  if (opts.idempotencyKey !== undefined) headers['idempotency-key'] = opts.idempotencyKey
  const res = await client.request('POST', '/jobs', { body, headers })
  const text = await res.text()
  const job = JSON.parse(text) as JobView
  // 200: the gateway handed back an existing job (an idempotent replay, or an identical read job in flight).
  if (res.status === 200) process.stderr.write(`an existing job: ${jobPath(job.id)} (${job.status})\n`)
  process.stdout.write(opts.json === true ? text.trimEnd() + '\n' : job.id + '\n')
}
