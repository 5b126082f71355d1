/**
 * The command line's progress bars on a real terminal: `watch` and `results --out` run in a tmux pane of a fixed
 * size (a pseudo-terminal, as a user's), against a real gateway whose DrChrono simulator is slowed so the job runs
 * a few seconds. The screens are saved in the test's folder (screen-running.txt, screen.txt) and must show a bar
 * (its characters and a percentage) while the job runs, and the final state once it has ended.
 */
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildCli } from '../helpers/cli.js'
import { requireProgram } from '../helpers/programs.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { clientKeys, startGateway } from '../helpers/gateway.js'

/** The bar: cli-progress's shades preset, filled and empty cells, then a percentage. */
const BAR = /[█░]{30} (\d{1,3})%/

t.test('watch draws a live bar and ends on the job\'s state; results --out draws one on stderr', async t => {
  const TMUX = requireProgram(t, 'tmux (a terminal for the progress bars)', ['/usr/bin/tmux', 'tmux'], 'tmux')
  if (TMUX === undefined) return
  const sim = await startDrchrono(t, { recordCount: { appointments: 1500 }, generationMs: 300 })
  const gw = await startGateway(t, { env: { ...drchronoEnv(sim), DRCHRONO_PAGE_CONCURRENCY: '1', DRCHRONO_SPECULATIVE_PAGES: '1' } })
  const cli = await buildCli(t, { url: gw.url, key: clientKeys.alpha })
  const dir = t.testdir({})

  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'appointments', params: { page_size: 250, show_archived: true } }) })
  const { id } = await res.json()
  const file = join(dir, 'records.ndjson')
  const script = join(dir, 'run.sh')
  await writeFile(script, [
    `export BULK_GATEWAY_URL='${gw.url}' BULK_GATEWAY_KEY='${clientKeys.alpha}'`,
    'clear',
    `node '${cli.bin}' watch ${id} --interval 0.2`,
    'echo "watch exit $?"',
    `node '${cli.bin}' results ${id} --out '${file}'`,
    'echo "results exit $?"',
    'sleep 600',
  ].join('\n') + '\n')

  // A socket path is limited to about 100 bytes: the tmux server's goes in a short folder of its own.
  const socketDir = await mkdtemp(join(tmpdir(), 'bg-tmux-'))
  t.teardown(() => rm(socketDir, { recursive: true, force: true }))
  const socket = join(socketDir, 'sock')
  const tmux = (...args: string[]) => spawnSync(TMUX, ['-S', socket, ...args], { encoding: 'utf8' })
  const started = tmux('new-session', '-d', '-s', 'cli', '-x', '120', '-y', '20', `bash --norc --noprofile '${script}'`)
  t.equal(started.status, 0, 'tmux started', { stderr: started.stderr })
  t.teardown(() => { tmux('kill-server') })
  t.equal(tmux('has-session', '-t', 'cli').status, 0, 'the session runs')

  const screen = (): string => tmux('capture-pane', '-p', '-t', 'cli').stdout
  let running: string | null = null
  let final = ''
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    final = screen()
    const percent = Number(BAR.exec(final)?.[1] ?? -1)
    if (running === null && percent > 0 && percent < 100 && /running/.test(final)) running = final
    if (/results exit \d+/.test(final)) break
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  await writeFile(join(dir, 'screen.txt'), final)
  if (running !== null) await writeFile(join(dir, 'screen-running.txt'), running)
  t.comment(`screen while running:\n${running ?? '(none seen)'}\nscreen at the end:\n${final}`)

  t.ok(running, 'a bar part-way (between 0 and 100 %) was seen while the job ran')
  t.match(running ?? '', /running \| page \d+ of \d+, \d+ records/, 'beside it the job\'s X-Progress')
  const lines = final.split('\n')
  const watchBar = lines.find(l => BAR.test(l) && /completed/.test(l))
  t.ok(watchBar, 'the final screen shows watch\'s bar at its end', { final })
  t.match(watchBar ?? '', /█{30} 100% \| completed \| 1500 records/, 'full, 100 %, completed')
  t.equal(lines.filter(l => / \| (queued|running|completed) \| /.test(l)).length, 1, 'redrawn in place: one bar line, not one per poll')
  t.match(final, new RegExp(`job ${id} completed: 1500 records`), 'then the job\'s final state')
  t.match(final, /watch exit 0/, 'watch exits 0: the job completed')
  t.match(final, /█{30} 100% \| 1500\/1500 records/, 'results --out: a bar on stderr, which is the terminal')
  t.match(final, /wrote 1500 records/)
  t.match(final, /results exit 0/)
  const written = await readFile(file)
  const expected = Buffer.from(await (await gw.request(`/jobs/${id}/results`, { headers: { accept: 'application/x-ndjson' } })).arrayBuffer())
  t.ok(written.equals(expected), 'the file: the NDJSON bytes')
})
