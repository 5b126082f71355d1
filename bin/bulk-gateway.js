#!/usr/bin/env node
// The package's bin (`npx bulk-gateway`): runs the command line compiled into dist/ by `npm run build` (which
// `npm start` runs too). It stays plain JavaScript so that it needs no build itself and can say what is missing.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const main = new URL('../dist/cli/main.js', import.meta.url)
if (!existsSync(main)) {
  process.stderr.write(`bulk-gateway: the command line is not built (${fileURLToPath(main)} is missing).\n` +
    `Run \`npm run build\` (or \`npm start\`) in ${fileURLToPath(new URL('..', import.meta.url))} first.\n`)
  process.exit(2)
}
const { run } = await import(main.href)
process.exitCode = await run(process.argv)
