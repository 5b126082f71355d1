/**
 * `results`: a job's records as NDJSON, on stdout or into `--out FILE`, read as cursor pages whose records are cut
 * out as bytes (page-records.ts), so the output is byte for byte the gateway's NDJSON stream and can resume.
 *
 * `--out FILE` writes `FILE.part`, and after each page (flushed to disk first) `FILE.part.json`: the job, the
 * cursor of the next page and how many bytes and records are written. Only the whole set is renamed to FILE, so a
 * FILE that exists is complete. The same command run again resumes from `FILE.part.json`: `FILE.part` is cut back
 * to the bytes it names (a page written after it is dropped) and the next page is read from its cursor.
 * On stdout, an interrupted read says which `--cursor` continues it.
 */
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import progress from 'cli-progress'
import { GatewayRefusal, jobPath, type GatewayClient } from './client.js'
import { CliError, EXIT, usageError, type ExitCode } from './exit.js'
import { pageRecords } from './page-records.js'
import { readJob } from './watch.js'

export interface ResultsOptions {
  out?: string
  cursor?: string
  /** Records per page asked for (1..1000, the API's limit). */
  limit?: number
  json?: boolean
}

/** What `FILE.part.json` holds: where an interrupted `--out` read stands. */
export interface PartState {
  job: string
  /** The cursor of the next page; null once every page is written (only the rename was left). */
  cursor: string | null
  bytes: number
  records: number
  /** Whether the read began at the first record (not at a --cursor): then the records must add up to the total. */
  fromStart: boolean
  /** The job's record count, as the last page written said (absent in states written before it was kept). */
  total?: number
}

const partPaths = (out: string): { part: string, state: string } => ({ part: `${out}.part`, state: `${out}.part.json` })

async function readState (path: string): Promise<PartState | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as PartState
  } catch {
    return null
  }
}

/** Written beside, then renamed: a crash leaves the old state or the new one, never half of one. */
async function writeState (path: string, state: PartState): Promise<void> {
  await writeFile(`${path}.tmp`, JSON.stringify(state) + '\n')
  await rename(`${path}.tmp`, path)
}

/** Where the records go: stdout, or FILE.part with its state. */
interface Sink {
  write (ndjson: Buffer, next: string | null, records: number, total: number): Promise<void>
  /** Bytes in the output so far. */
  bytes (): number
  close (): Promise<void>
}

function stdoutSink (): Sink {
  let bytes = 0
  return {
    async write (ndjson) {
      await new Promise<void>((resolve, reject) => process.stdout.write(ndjson, err => err == null ? resolve() : reject(err)))
      bytes += ndjson.length
    },
    bytes: () => bytes,
    async close () {},
  }
}

async function fileSink (id: string, out: string, start: PartState): Promise<Sink> {
  const { part, state } = partPaths(out)
  const handle = await open(part, start.bytes > 0 ? 'r+' : 'w')
  // A page written after the state was saved (the process died between the two) is cut off and read again.
  await handle.truncate(start.bytes)
  let bytes = start.bytes
  return {
    async write (ndjson, next, records, total) {
      // A write may take fewer bytes than asked (rare on a regular file): the rest goes after it.
      for (let at = 0; at < ndjson.length;) {
        const { bytesWritten } = await handle.write(ndjson, at, ndjson.length - at, bytes)
        at += bytesWritten
        bytes += bytesWritten
      }
      // On disk before the state says so: a resumed read never trusts bytes that were not written.
      await handle.datasync()
      await writeState(state, { job: id, cursor: next, bytes, records, fromStart: start.fromStart, total })
    },
    bytes: () => bytes,
    close: () => handle.close(),
  }
}

/** Where an `--out` read starts: a resumable FILE.part of this job, or the beginning (or --cursor). */
async function startOf (id: string, out: string, cursor: string | undefined): Promise<{ state: PartState, resumed: boolean }> {
  const fresh: PartState = { job: id, cursor: cursor ?? null, bytes: 0, records: 0, fromStart: cursor === undefined }
  if (cursor !== undefined) return { state: fresh, resumed: false }
  const { part, state: statePath } = partPaths(out)
  const saved = await readState(statePath)
  if (saved === null) return { state: fresh, resumed: false }
  if (saved.job !== id) throw usageError(`${part} holds results of job ${saved.job}, not ${id}: remove ${part} and ${statePath}, or choose another --out`)
  const size = await stat(part).then(s => s.size, () => -1)
  if (size < saved.bytes) {
    process.stderr.write(`${part} is shorter than ${statePath} says: starting again from the first record\n`)
    return { state: fresh, resumed: false }
  }
  return { state: saved, resumed: true }
}

/** 410 (expired, cancelled) and a failed job's 409 are the job's outcome (exit 1), not a refusal of the request. */
async function refusal (client: GatewayClient, id: string, err: GatewayRefusal): Promise<CliError> {
  if (err.status === 410) return new CliError(EXIT.job, err.message)
  if (err.status === 409) {
    const { job } = await readJob(client, id)
    if (job.status === 'failed') return new CliError(EXIT.job, `${err.message}\njob ${id} failed: ${job.error?.code ?? ''}`)
    return new CliError(EXIT.gateway, `${err.message}\n(wait for it: bulk-gateway watch ${id})`)
  }
  return err
}

function progressBar (): { show (done: number, total: number): void, stop (): void } {
  if (process.stderr.isTTY !== true) return { show () {}, stop () {} }
  const bar = new progress.SingleBar({ stream: process.stderr, format: '{bar} {percentage}% | {value}/{total} records', barsize: 30, hideCursor: true }, progress.Presets.shades_classic)
  let started = false
  return {
    show (done, total) {
      if (!started) bar.start(total, done)
      else bar.update(done)
      started = true
    },
    stop () {
      if (started) bar.stop()
      started = false
    },
  }
}

export async function results (client: GatewayClient, id: string, opts: ResultsOptions, signal: AbortSignal): Promise<ExitCode> {
  const limit = opts.limit ?? 1000
  const start = opts.out === undefined
    ? { state: { job: id, cursor: opts.cursor ?? null, bytes: 0, records: 0, fromStart: opts.cursor === undefined }, resumed: false }
    : await startOf(id, opts.out, opts.cursor)
  const sink = opts.out === undefined ? stdoutSink() : await fileSink(id, opts.out, start.state)
  if (start.resumed) process.stderr.write(`resuming ${opts.out}.part after ${start.state.records} records\n`)
  const bar = progressBar()
  let records = start.state.records
  let cursor = start.state.cursor
  // Kept in the state: a resumed read that has only the rename left still checks the count.
  let total = start.state.total ?? -1
  try {
    // A resumed state whose cursor is null had every page written: only the rename was left.
    const pending = !start.resumed || cursor !== null
    while (pending) {
      const query = `?limit=${limit}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`
      let body: Buffer
      try {
        const res = await client.request('GET', `${jobPath(id)}/results${query}`, { signal })
        body = Buffer.from(await res.arrayBuffer())
      } catch (err) {
        throw err instanceof GatewayRefusal ? await refusal(client, id, err) : err
      }
      const page = pageRecords(body)
      records += page.count
      total = page.total
      await sink.write(page.ndjson, page.nextCursor, records, total)
      bar.show(records, total)
      cursor = page.nextCursor
      if (cursor === null) break
    }
  } catch (err) {
    bar.stop()
    await sink.close()
    // The reader of stdout went away (`| head`): it has what it wanted.
    if ((err as { code?: unknown }).code === 'EPIPE') return EXIT.ok
    throw new CliError(err instanceof CliError ? err.exitCode : signal.aborted ? EXIT.interrupted : EXIT.gateway, stopped(err, id, opts, records, cursor))
  }
  bar.stop()
  await sink.close()
  if (opts.out === undefined) return EXIT.ok
  const { part, state } = partPaths(opts.out)
  if (start.state.fromStart && (total < 0 || records !== total)) {
    // The state goes, so that running the command again reads the job anew rather than renaming this file.
    await rm(state, { force: true })
    const served = total < 0 ? `${records} records, and the job's total is not known` : `${records} records of ${total}`
    throw new CliError(EXIT.gateway, `the gateway served ${served}: ${part} is kept but incomplete; run the command again to read the job anew`)
  }
  await rename(part, opts.out)
  await rm(state, { force: true })
  const summary = { job: id, out: opts.out, records, bytes: sink.bytes() }
  if (opts.json === true) process.stdout.write(JSON.stringify(summary) + '\n')
  else process.stderr.write(`wrote ${records} records (${sink.bytes()} bytes) to ${opts.out}\n`)
  return EXIT.ok
}

/** Why the read stopped, and how to go on from there. */
function stopped (err: unknown, id: string, opts: ResultsOptions, records: number, cursor: string | null): string {
  const why = err instanceof Error ? err.message : String(err)
  const reason = (err as { name?: string }).name === 'AbortError' ? 'interrupted' : why
  if (records === 0 && opts.cursor === undefined) return reason
  const how = opts.out !== undefined
    ? `${opts.out}.part holds them: run the same command again to resume`
    : `continue with: bulk-gateway results ${id} --cursor ${cursor ?? ''}`
  return `${reason}\nstopped after ${records} records; ${how}`
}
