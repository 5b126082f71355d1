/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or BENCH_CPU_PROF=<dir> for the bench's gateways): the
 * functions and the packages where the process spent its own time, largest first.
 * Usage: npx tsx bench/profile-summary.ts <file.cpuprofile> [top=25]
 */
import { readFileSync } from 'node:fs'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const [file, topArg] = process.argv.slice(2)
if (file === undefined) throw new Error('usage: profile-summary.ts <file.cpuprofile> [top]')
const top = Number(topArg ?? 25)
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(profile.nodes.map(n => [n.id, n]))
const selfMs = new Map<number, number>()
profile.samples.forEach((id, i) => selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000))

/** Where a frame's code lives: a package under node_modules, a file of ours, node's internals, or V8. */
function placeOf (url: string): string {
  if (url === '') return '(v8/native)'
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0]
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1] as string
  return url.replace(/^file:\/\/.*?\/(dist|src|bench)\//, '$1/')
}

const functions = new Map<string, number>()
const places = new Map<string, number>()
let total = 0
for (const [id, t] of selfMs) {
  const node = byId.get(id)
  if (node === undefined) continue
  const { functionName, url, lineNumber } = node.callFrame
  const place = placeOf(url)
  const name = `${functionName || '(anonymous)'} ${place}${url === '' ? '' : `:${lineNumber + 1}`}`
  functions.set(name, (functions.get(name) ?? 0) + t)
  places.set(place, (places.get(place) ?? 0) + t)
  total += t
}
const show = (title: string, m: Map<string, number>): void => {
  console.log(`\n${title} (self time, ${(total / 1000).toFixed(1)} s sampled)`)
  for (const [k, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${(100 * t / total).toFixed(1).padStart(5)}%  ${(t / 1000).toFixed(2).padStart(7)} s  ${k}`)
}
show('By function', functions)
show('By package or file', places)
