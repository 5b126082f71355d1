/**
 * Every upstream folder has the same shape (docs/ARCHITECTURE.md, "upstreams/"): its definition, its environment,
 * its params, its adapter and its simulator, under the same names, so a newcomer finds each part where the other
 * upstreams keep it, and a new upstream copies one folder's layout.
 */
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { registry } from '../../src/upstreams/registry.js'

const UPSTREAMS = join(import.meta.dirname, '..', '..', 'src', 'upstreams')
const SHAPE = ['definition.ts', 'env.ts', 'params.ts', 'adapter.ts', 'simulator/index.ts']

t.test('each registered upstream\'s folder has definition, env, params, adapter and simulator', async t => {
  for (const { name } of registry.upstreams) {
    t.same(SHAPE.filter(file => !existsSync(join(UPSTREAMS, name, file))), [], name)
  }
})

t.test('every folder of upstreams/ is a registered upstream, or the simulator kit', async t => {
  const folders = readdirSync(UPSTREAMS, { withFileTypes: true }).filter(d => d.isDirectory()).map(d => d.name)
  t.same(folders.filter(f => f !== 'simulator-kit' && !registry.upstreams.some(u => u.name === f)), [])
})
