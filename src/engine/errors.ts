/** Why a job's AbortSignal fired. The worker branches on these classes, never on messages. */

/** The client cancelled the job. */
export class JobCancelledError extends Error {
  override name = 'JobCancelledError'
}

/** The process is shutting down: the job goes back to the queue for another worker. */
export class ShutdownError extends Error {
  override name = 'ShutdownError'
}
