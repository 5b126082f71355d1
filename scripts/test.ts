/**
 * `npm test`: runs the tap suite against one PostgreSQL server. With DATABASE_URL set, that server is used
 * (each test file creates and drops its own database there, so the role needs CREATEDB); otherwise one
 * embedded PostgreSQL is started in a temporary folder for the run and removed afterwards.
 * Arguments are passed to tap (e.g. `npm test -- test/api/jobs.test.ts`).
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pino } from 'pino'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/db/embedded.js'

const log = pino({ level: 'info' })
let server: EmbeddedPostgres | null = null
let dir: string | null = null
let url = process.env.DATABASE_URL
if (url === undefined || url === '') {
  dir = await mkdtemp(join(tmpdir(), 'bulk-gateway-test-'))
  server = await startEmbeddedPostgres({ dataDir: dir, log })
  url = server.url
  log.info('tests run against an embedded PostgreSQL')
} else {
  log.info('tests run against DATABASE_URL')
}

const tap = join(dirname(createRequire(import.meta.url).resolve('tap/package.json')), 'dist/esm/run.mjs')
const child = spawn(process.execPath, [tap, ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, TEST_DATABASE_URL: url },
})
const code = await new Promise<number>(resolve => child.on('exit', (c, signal) => resolve(c ?? (signal !== null ? 1 : 0))))
await server?.stop()
if (dir !== null) await rm(dir, { recursive: true, force: true })
process.exit(code)
