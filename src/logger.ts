/**
 * The process logger: pino JSON. Redaction is the last line of defence; the first is never putting a secret
 * or a record in a log call at all (adapters log page numbers and counts, not bodies).
 */
import { pino, type Logger } from 'pino'
import type { Config } from './config.js'

export const redactPaths = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-clinia-api-key"]',
  'req.headers["x-metriport-signature"]',
  'req.headers.cookie',
]

export function createLogger (config: Pick<Config, 'LOG_LEVEL'>): Logger {
  return pino({ level: config.LOG_LEVEL, redact: { paths: redactPaths, censor: '[redacted]' } })
}
