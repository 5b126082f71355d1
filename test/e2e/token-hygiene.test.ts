/**
 * No DrChrono token, configured or rotated, reaches a log line or lies in the database unencrypted: distinctive
 * tokens are planted, rotated twice, and every captured log line and every column of every table is searched,
 * as text and as the raw bytes of bytea columns.
 */
import t from 'tap'
import { SANDBOX_CREDENTIALS } from '../../src/upstreams/drchrono/simulator/index.js'
import { sql } from '../helpers/database.js'
import { startDrchrono } from '../helpers/drchrono.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

const configured = { accessToken: 'tok-ACCESS-LEAKMARK-5d1c9a', refreshToken: 'tok-REFRESH-LEAKMARK-8e2f0b' }

async function run (gw: TestGateway): Promise<Record<string, unknown>> {
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: {} }) })
  return waitForJob(gw, (await res.json()).id)
}

/** Every row of every table as text, and the bytes of every bytea column as text. */
async function dumpDatabase (url: string): Promise<string> {
  const tables = await sql<{ name: string }>(url, 'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = \'public\' AND table_type = \'BASE TABLE\'')
  const parts: string[] = []
  for (const { name } of tables) {
    const quoted = `"${name.replace(/"/g, '""')}"`
    parts.push(...(await sql<{ row: string }>(url, `SELECT t::text AS row FROM ${quoted} t`)).map(r => r.row))
    const binary = await sql<{ column: string }>(url,
      'SELECT column_name AS column FROM information_schema.columns WHERE table_schema = \'public\' AND table_name = $1 AND data_type = \'bytea\'', [name])
    for (const { column } of binary) {
      const rows = await sql<{ raw: Buffer | null }>(url, `SELECT "${column.replace(/"/g, '""')}" AS raw FROM ${quoted}`)
      parts.push(...rows.map(r => r.raw?.toString('latin1') ?? ''))
    }
  }
  return parts.join('\n')
}

t.test('tokens appear in no log line and nowhere unencrypted in the database', async t => {
  const sim = await startDrchrono(t, { recordCount: { patients: 50 }, ...configured })
  const gw = await startGateway(t, {
    logLevel: 'trace',
    env: {
      DRCHRONO_BASE_URL: sim.url,
      DRCHRONO_POLL_INTERVAL_MS: '20',
      DRCHRONO_ACCESS_TOKEN: configured.accessToken,
      DRCHRONO_REFRESH_TOKEN: configured.refreshToken,
      DRCHRONO_CLIENT_ID: SANDBOX_CREDENTIALS.clientId,
      DRCHRONO_CLIENT_SECRET: SANDBOX_CREDENTIALS.clientSecret,
    },
  })
  const tokens = [configured.accessToken, configured.refreshToken]
  for (let i = 0; i < 2; i++) {
    sim.state.revokeAccessToken()
    const job = await run(gw)
    t.equal(job.status, 'completed', JSON.stringify(job.error))
    tokens.push(sim.state.accessToken, sim.state.refreshToken)
  }
  t.equal(sim.state.stats.tokenRefreshes, 2)
  sim.state.revokeAccessToken()
  sim.state.refreshToken = 'tok-REFUSED-LEAKMARK-3a7c'
  tokens.push(sim.state.refreshToken)
  t.equal((await run(gw)).status, 'failed', 'a refused refresh is reported too')

  const stored = await sql<{ key_id: string }>(gw.databaseUrl, 'SELECT key_id FROM upstream_credentials')
  t.equal(stored.length, 1, 'the rotated pair is stored')
  const logs = gw.logs.join('')
  const database = await dumpDatabase(gw.databaseUrl)
  t.ok(gw.logs.length > 20, `${gw.logs.length} log lines`)
  t.ok(database.includes(stored[0]?.key_id ?? '-') && database.includes('patients'), 'the dump covers the credentials and the jobs')
  // Each token also as the hex and base64 of its bytes, the forms a bytea or an encoder would take.
  const forms = tokens.flatMap(tok => [tok, Buffer.from(tok).toString('hex'), Buffer.from(tok).toString('base64').slice(0, 24)])
  t.same(forms.filter(f => logs.includes(f)), [], 'no token in the logs')
  t.same(forms.filter(f => database.includes(f)), [], 'no token unencrypted in any table')
  t.same(tokens.filter(tok => database.includes(tok.slice(4, 20))), [], 'nor a piece of one')
})
