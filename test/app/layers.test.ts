/**
 * The rooms of src/ and which way their imports point (docs/ARCHITECTURE.md, "Import direction"). Read from the source
 * files' import statements, so a new import that points the wrong way fails here, not in a review.
 *
 *   api ──► engine ──► db ──► domain, lib         metrics ──► db
 *    │        │         (db never imports engine)
 *    └──► upstreams ──► contract ──► domain, lib
 *            (the engine knows adapters only through contract/, never upstreams/)
 *   cli ──► (nothing of the gateway: a client of its HTTP API)
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, normalize, relative } from 'node:path'
import t from 'tap'

const SRC = join(import.meta.dirname, '..', '..', 'src')

/** Every .ts file under src/ (the generated Prisma client aside), as a path relative to src/. */
function sources (dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(entry => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === 'generated' ? [] : sources(path)
    return entry.name.endsWith('.ts') ? [relative(SRC, path)] : []
  })
}

/** The files under src/ that `file` imports (relative specifiers only), as paths relative to src/. */
function importsOf (file: string): string[] {
  const text = readFileSync(join(SRC, file), 'utf8')
  const specifiers = [...text.matchAll(/^(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/gms)].map(m => m[1] as string)
  return specifiers.map(s => normalize(join(dirname(file), s)).replace(/\.js$/, '.ts'))
}

const room = (file: string): string => file.includes('/') ? file.slice(0, file.indexOf('/')) : '(top)'
const files = sources()

/** Rooms and the rooms each must never import from. */
const forbidden: Record<string, string[]> = {
  lib: ['api', 'engine', 'db', 'upstreams', 'metrics', 'contract', 'domain', '(top)'],
  domain: ['api', 'engine', 'db', 'upstreams', 'metrics', 'contract', '(top)'],
  contract: ['api', 'engine', 'db', 'upstreams', 'metrics', '(top)'],
  // Metrics read their gauges from the database (job counts, budget use), as the engine does.
  metrics: ['api', 'engine', 'upstreams'],
  db: ['api', 'engine', 'upstreams'],
  engine: ['api', 'upstreams'],
  // The command line is a client of the HTTP API: it shares no code with the gateway (it is built and run alone).
  cli: ['api', 'engine', 'db', 'upstreams', 'metrics', 'contract', 'domain', 'lib', 'generated', '(top)'],
}

t.test('each room imports only from the rooms below it', async t => {
  t.ok(files.length > 50, `${files.length} source files read`)
  for (const [from, rooms] of Object.entries(forbidden)) {
    const wrong = files.filter(f => room(f) === from)
      .flatMap(f => importsOf(f).filter(i => rooms.includes(room(i))).map(i => `${f} imports ${i}`))
    t.same(wrong, [], `${from}/ imports nothing from ${rooms.join(', ')}`)
  }
})

t.test('no room of the gateway imports the command line', async t => {
  const wrong = files.filter(f => room(f) !== 'cli').flatMap(f => importsOf(f).filter(i => room(i) === 'cli').map(i => `${f} imports ${i}`))
  t.same(wrong, [])
})

t.test('routes call the engine, never the database\'s statements', async t => {
  const wrong = files.filter(f => room(f) === 'api').flatMap(f => importsOf(f).filter(i => i.startsWith('db/')).map(i => `${f} imports ${i}`))
  t.same(wrong, [])
})

t.test('an adapter talks to its upstream and the engine only through the contract', async t => {
  // The upstreams plugin (upstreams/plugin.ts) wires the database's stores into the adapters; nothing else may.
  const adapters = files.filter(f => /^upstreams\/[^/]+\//.test(f))
  const wrong = adapters.flatMap(f => importsOf(f).filter(i => ['api', 'engine', 'db', 'metrics'].includes(room(i))).map(i => `${f} imports ${i}`))
  t.same(wrong, [])
})

t.test('the rule reads real imports: a file that breaks it is caught', async t => {
  // The scan itself, on a known import: engine/worker.ts imports the database's job statements.
  t.ok(importsOf('engine/worker.ts').includes('db/sql/jobs.ts'))
})
