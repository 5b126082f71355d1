/** One line per target: the gateway's figure, the baseline measured in the same run, their ratio, PASS or MISS. */
import { writeFile } from 'node:fs/promises'

export interface Line {
  /** Target number and letter, e.g. "1a". */
  id: string
  what: string
  /** The gateway's absolute figure, formatted. */
  gateway: string
  /** The baseline's absolute figure and what it is, formatted. */
  baseline: string
  /** Gateway against baseline, formatted (e.g. "8.3× faster", "64% of COPY"). */
  ratio: string
  target: string
  /** null: shown for information, no target. */
  pass: boolean | null
  /** Raw numbers and settings behind the line, for results.json. */
  data: Record<string, unknown>
  note?: string
}

export const verdict = (line: Line): string => line.pass === null ? 'info' : line.pass ? 'PASS' : 'MISS'

/** A failed measurement still gets its line, so the table shows what could not be measured and why. */
export function failedLine (id: string, what: string, target: string, err: unknown): Line {
  const message = err instanceof Error ? err.message : String(err)
  return { id, what, gateway: 'error', baseline: '-', ratio: '-', target, pass: false, data: { error: message }, note: `not measured: ${message.split('\n')[0]}` }
}

const fmt = (n: number, digits = 1): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
export const seconds = (s: number): string => `${fmt(s, 2)} s`
export const perSecond = (n: number, unit: string): string => `${Math.round(n).toLocaleString('en-US')} ${unit}/s`
export const megabytes = (bytes: number): string => `${fmt(bytes / 1024 / 1024)} MB`
export const ms = (n: number): string => `${fmt(n, 1)} ms`
export const times = (r: number): string => `${fmt(r, 2)}×`
export const percent = (r: number): string => `${Math.round(r * 100)}%`

/** The table as Markdown (it reads as plain text on a terminal too). */
export function table (lines: readonly Line[]): string {
  const rows = [['#', 'what', 'gateway', 'baseline (same run)', 'ratio', 'target', 'result']]
  for (const l of lines) rows.push([l.id, l.what, l.gateway, l.baseline, l.ratio, l.target, verdict(l)])
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map(r => r[c]!.length)))
  const render = (r: string[]): string => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`
  return [render(rows[0]!), `|${widths.map(w => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(render)].join('\n')
}

export async function writeResults (path: string, run: Record<string, unknown>, lines: readonly Line[]): Promise<void> {
  const body = { ...run, lines: lines.map(l => ({ ...l, result: verdict(l) })) }
  await writeFile(path, JSON.stringify(body, null, 2) + '\n')
}

/** Microseconds of CPU per item, or n/a when the seconds could not be read (a remote PostgreSQL). */
export const microsEach = (cpuSeconds: number | null, items: number): string =>
  cpuSeconds === null || Number.isNaN(cpuSeconds) ? 'n/a' : `${(cpuSeconds * 1e6 / items).toFixed(1)} µs`

/** "CPU per record: gateway 12.0 µs, PostgreSQL 14.1 µs, simulator 11.0 µs": whose CPU a measurement spent. */
export function cpuNote (cpu: { gateway: number, postgres: number | null, bench: number }, items: number, benchIs: string, baseline?: string): string {
  return `CPU per record: gateway ${microsEach(cpu.gateway, items)}, PostgreSQL ${microsEach(cpu.postgres, items)}, ${benchIs} ${microsEach(cpu.bench, items)}` +
    (baseline === undefined ? '' : `; ${baseline}`)
}
