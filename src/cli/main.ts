/**
 * The command line (`npx bulk-gateway`, bin/bulk-gateway.js): a client of the gateway's HTTP API. Commands and
 * options are parsed by commander; every failure ends here as one message on stderr and an exit code (exit.ts).
 * docs/CLI.md documents it.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { DEFAULT_URL, GatewayClient, jobPath } from './client.js'
import { CliError, EXIT, type ExitCode } from './exit.js'
import { exitFor, listText, statusText, type JobView } from './job-view.js'
import { results } from './results.js'
import { submit } from './submit.js'
import { readJob, watch } from './watch.js'

const ENVIRONMENT = `
Environment:
  BULK_GATEWAY_URL  the gateway's base URL (default ${DEFAULT_URL})
  BULK_GATEWAY_KEY  the client key, sent as Authorization: Bearer <key>

Exit codes:
  0  success (watch: the job completed)
  1  the job failed, was cancelled or expired
  2  bad usage
  3  the gateway could not be reached or refused the request (its problem's code and detail are printed)
  130  interrupted (Ctrl-C)`

const RESULTS_HELP = `
Records are written byte for byte as the gateway's NDJSON (Accept: application/x-ndjson), one per line, read as
cursor pages so that a read can stop and go on:
  --out FILE    writes FILE.part and, after each page, FILE.part.json (the next page's cursor); FILE appears,
                renamed, only once every record is written. If the read stops (network, Ctrl-C), run the same
                command again: it resumes from FILE.part.json. A FILE that exists is complete.
  --cursor C    starts after the record the cursor names: an interrupted read to stdout prints the cursor that
                continues it (bulk-gateway results ID --cursor C >> records.ndjson).
A progress bar is drawn on stderr when stderr is a terminal.`

const SUBMIT_HELP = `
Examples:
  bulk-gateway submit --body job.json
  echo '{"upstream":"drchrono","resource":"patients"}' | bulk-gateway submit --body -
  bulk-gateway submit --upstream drchrono --resource appointments --param since=2024-02-01 --param page_size:=500
--param key=value gives a string; key:=json gives a JSON value (a number, true/false, an array).`

function positiveNumber (value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a positive number of seconds')
  return n
}

function pageLimit (max: number) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`an integer from 1 to ${max}`)
    return n
  }
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

/** The program; `run` parses argv with it. Actions set `exit.code` (commander's actions return nothing). */
function program (signal: AbortSignal, exit: { code: ExitCode }): Command {
  const client = (): GatewayClient => GatewayClient.fromEnv()
  const cli = new Command('bulk-gateway')
    .description('Submit, watch and read bulk jobs of a bulk-gateway over its HTTP API.')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', ENVIRONMENT)
    .exitOverride()

  cli.command('submit')
    .description('submit a job (POST /jobs) and print its id')
    .option('--body <file>', 'a POST /jobs body (JSON); - reads stdin')
    .option('--upstream <name>', 'the upstream (instead of --body)')
    .option('--resource <name>', 'the resource (instead of --body)')
    .option('--param <key=value>', 'a param: key=value (string) or key:=json; repeatable', collect)
    .option('--idempotency-key <key>', 'the Idempotency-Key header: the same key returns the same job')
    .option('--json', 'print the job view instead of the id')
    .addHelpText('after', SUBMIT_HELP)
    .action(async opts => { await submit(client(), opts) })

  cli.command('status')
    .description('show a job (GET /jobs/ID); exits 1 if it failed, was cancelled or expired')
    .argument('<id>', 'the job id')
    .option('--json', 'print the job view as the gateway sends it')
    .action(async (id: string, opts: { json?: boolean }) => {
      const { job, text, xProgress } = await readJob(client(), id, signal)
      process.stdout.write(opts.json === true ? text.trimEnd() + '\n' : statusText(job, xProgress))
      exit.code = exitFor(job)
    })

  cli.command('watch')
    .description('follow a job until it ends, with a progress bar on a terminal; exits 0 if it completed, 1 otherwise')
    .argument('<id>', 'the job id')
    .addOption(new Option('--interval <seconds>', 'seconds between polls (default: the job\'s Retry-After, else 1)').argParser(positiveNumber))
    .option('--json', 'no progress; print the final job view')
    .action(async (id: string, opts: { json?: boolean, interval?: number }) => {
      exit.code = await watch(client(), id, opts, signal)
    })

  cli.command('results')
    .description('write a job\'s records as NDJSON to stdout or --out FILE (resumable)')
    .argument('<id>', 'the job id')
    .option('--out <file>', 'write to FILE (through FILE.part; run again to resume)')
    .option('--cursor <cursor>', 'start after this cursor (a page\'s nextCursor)')
    .addOption(new Option('--limit <n>', 'records per page asked for').default(1000).argParser(pageLimit(1000)))
    .option('--json', 'with --out: print a JSON summary on stdout')
    .addHelpText('after', RESULTS_HELP)
    .action(async (id: string, opts: { out?: string, cursor?: string, limit: number, json?: boolean }) => {
      exit.code = await results(client(), id, opts, signal)
    })

  cli.command('cancel')
    .description('cancel a job (DELETE /jobs/ID); a completed job\'s results are dropped')
    .argument('<id>', 'the job id')
    .option('--json', 'print the job view')
    .action(async (id: string, opts: { json?: boolean }) => {
      const res = await client().request('DELETE', jobPath(id), { signal })
      const text = await res.text()
      const job = JSON.parse(text) as JobView
      process.stdout.write(opts.json === true ? text.trimEnd() + '\n' : `job ${job.id} ${job.status}\n`)
    })

  cli.command('list')
    .description('list your jobs, newest first (GET /jobs)')
    .option('--status <status>', 'only jobs that read this status now')
    .option('--upstream <name>', 'only jobs of this upstream')
    .addOption(new Option('--limit <n>', 'jobs per page').default(20).argParser(pageLimit(100)))
    .option('--cursor <cursor>', 'the next page (the nextCursor a page printed)')
    .option('--json', 'print the page as the gateway sends it: {"data": [job views], "nextCursor": …}')
    .action(async (opts: { status?: string, upstream?: string, limit: number, cursor?: string, json?: boolean }) => {
      const query = new URLSearchParams({ limit: String(opts.limit) })
      if (opts.status !== undefined) query.set('status', opts.status)
      if (opts.upstream !== undefined) query.set('upstream', opts.upstream)
      if (opts.cursor !== undefined) query.set('cursor', opts.cursor)
      const res = await client().request('GET', `/jobs?${query.toString()}`, { signal })
      const text = await res.text()
      if (opts.json === true) {
        process.stdout.write(text.trimEnd() + '\n')
        return
      }
      const page = JSON.parse(text) as { data: JobView[], nextCursor: string | null }
      process.stdout.write(listText(page.data))
      if (page.nextCursor !== null) process.stderr.write(`more: bulk-gateway list --cursor ${page.nextCursor}\n`)
    })

  return cli
}

/** Runs the command line on `argv` (process.argv: node, script, arguments…) and returns its exit code. */
export async function run (argv: string[]): Promise<number> {
  const interrupt = new AbortController()
  const onSigint = (): void => interrupt.abort()
  process.once('SIGINT', onSigint)
  const exit: { code: ExitCode } = { code: EXIT.ok }
  // A closed pipe on stdout (`bulk-gateway results ID | head`) fails the write that meets it, which handles it;
  // without a listener the stream's 'error' event would also crash the process.
  process.stdout.on('error', () => {})
  try {
    await program(interrupt.signal, exit).parseAsync(argv)
    return exit.code
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are printed by commander and are not failures; every other parse error is bad usage.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage
    }
    if (interrupt.signal.aborted && !(err instanceof CliError)) {
      process.stderr.write('bulk-gateway: interrupted\n')
      return EXIT.interrupted
    }
    if (err instanceof CliError) {
      process.stderr.write(`bulk-gateway: ${err.message}\n`)
      return err.exitCode
    }
    process.stderr.write(`bulk-gateway: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    return EXIT.gateway
  } finally {
    process.off('SIGINT', onSigint)
  }
}
