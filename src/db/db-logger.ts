import type { LogFn } from 'pino'

/** The part of a pino (or Fastify) logger the database layer writes to. */
export interface DbLogger {
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
}
