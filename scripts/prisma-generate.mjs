// Generates the Prisma client (rust-free, `prisma-client` generator) without the native schema engine.
// `prisma generate` never runs that engine, but the CLI insists on a path to one and would try to download it,
// which cannot work offline; any existing file satisfies the check. Migrations use the wasm engine instead.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'

const schemaPath = 'prisma/schema.prisma'
const outDir = 'src/generated/prisma'
const stamp = `${outDir}/.schema-hash`
const hash = createHash('sha256').update(readFileSync(schemaPath)).digest('hex')
if (existsSync(stamp) && readFileSync(stamp, 'utf8') === hash && statSync(`${outDir}/client.ts`, { throwIfNoEntry: false })) {
  process.exit(0) // up to date: skip the CLI's few seconds of start-up
}

const require = createRequire(import.meta.url)
const cli = require.resolve('prisma/build/index.js')
const result = spawnSync(process.execPath, [cli, 'generate', '--schema', schemaPath], {
  stdio: ['ignore', 'inherit', 'inherit'],
  env: {
    ...process.env,
    PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
    CHECKPOINT_DISABLE: '1',
  },
})
if (result.status !== 0) process.exit(result.status ?? 1)
mkdirSync(outDir, { recursive: true })
writeFileSync(stamp, hash)
