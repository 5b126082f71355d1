/**
 * The command line's exit codes and the one error class that carries them. Commands throw a {@link CliError}; the
 * entry point (main.ts) prints its message on stderr and exits with its code.
 */

/** Exit codes, as docs/CLI.md lists them. */
export const EXIT = {
  /** Success (for `watch`: the job completed). */
  ok: 0,
  /** The job failed, was cancelled or expired. */
  job: 1,
  /** Bad usage: an unknown command or option, a missing argument, an unreadable body file. */
  usage: 2,
  /** The gateway could not be reached, or refused the request (its problem's `code` and `detail` are printed). */
  gateway: 3,
  /** Interrupted (SIGINT), the shell's convention 128 + 2. */
  interrupted: 130,
} as const

export type ExitCode = typeof EXIT[keyof typeof EXIT]

/** A failure the command line reports in one message and an exit code. */
export class CliError extends Error {
  constructor (readonly exitCode: ExitCode, message: string) {
    super(message)
    this.name = 'CliError'
  }
}

/** Bad usage (exit 2). */
export const usageError = (message: string): CliError => new CliError(EXIT.usage, message)
