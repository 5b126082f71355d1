/**
 * Acceptance (issue 10, point 2): patient data leaves on time. Jobs run on every upstream through its simulator,
 * with a unique marker planted everywhere a client can put one (Cliniko `q[]` values, DrChrono `patient` and
 * `last_name`, Metriport `patientId` and `metadata`, Clinia operation ids and data, an OCL version, an
 * Idempotency-Key). Once every job has finished and passed its `expiresAt` (RESULT_TTL_SECONDS=2) and the sweeper
 * has run, a dump of every table of the database finds neither marker, and neither do the gateway's log lines.
 */
import { randomBytes, randomInt } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { CODEC_PLAIN, unpackBody } from '../../src/db/sql/body-codec.js'
import { startCliniaSimulator } from '../../src/upstreams/clinia/simulator/index.js'
import { SANDBOX_API_KEY, startClinikoSimulator } from '../../src/upstreams/cliniko/simulator/index.js'
import { SANDBOX_CREDENTIALS as METRIPORT } from '../../src/upstreams/metriport/env.js'
import { SANDBOX_PATIENT_IDS, startMetriportSimulator } from '../../src/upstreams/metriport/simulator/index.js'
import { SANDBOX_OCL_TOKEN, startOclSimulator } from '../../src/upstreams/ocl/simulator/index.js'
import { drchronoEnv, startDrchrono } from '../helpers/drchrono.js'
import { startGateway, waitForJob, type TestGateway } from '../helpers/gateway.js'

/** Letters and digits only, so it fits every field's syntax (an OCL mnemonic, a Cliniko filter value). */
const MARK = `phi${randomBytes(8).toString('hex')}`
/** DrChrono's `patient` is a numeric id. */
const NUMERIC_MARK = String(randomInt(700_000_000, 799_999_999))

/**
 * Every row of every table of the database, as text. bytea shows as hex there, so result_pages' bodies are added as
 * the text they hold (decompressed when the gateway compressed them): a marker in a record is found either way.
 */
async function dumpDatabase (url: string): Promise<Map<string, string>> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows: tables } = await client.query<{ name: string }>(`
      SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`)
    const dump = new Map<string, string>()
    for (const { name } of tables) {
      const { rows } = await client.query<{ row: string }>(`SELECT t::text AS row FROM "${name.replaceAll('"', '""')}" t`)
      dump.set(name, rows.map(r => r.row).join('\n'))
    }
    const { rows: bodies } = await client.query<{ codec: number, bytes: number, body: Buffer }>('SELECT codec, bytes, body FROM result_pages')
    const texts = await Promise.all(bodies.map(b => b.codec === CODEC_PLAIN ? b.body : unpackBody(b.body, b.bytes)))
    dump.set('result_pages', [dump.get('result_pages') ?? '', ...texts.map(text => text.toString('utf8'))].join('\n'))
    return dump
  } finally {
    await client.end()
  }
}

const holding = (dump: Map<string, string>, mark: string): string[] =>
  [...dump].filter(([, text]) => text.toLowerCase().includes(mark.toLowerCase())).map(([name]) => name)

async function submit (gw: TestGateway, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string> {
  const res = await gw.request('/jobs', { method: 'POST', headers, body: JSON.stringify(body) })
  if (res.status !== 202) throw new Error(`POST /jobs ${String(body.upstream)} answered ${res.status}: ${await res.text()}`)
  return (await res.json()).id
}

t.test('after expiry and a sweep, no table holds a planted patient marker', async t => {
  const drchrono = await startDrchrono(t, { recordCount: { appointments: 30, patients: 30 } })
  const cliniko = await startClinikoSimulator({ seed: 7, recordCount: { patients: 40 } })
  t.teardown(() => cliniko.close())
  const clinia = await startCliniaSimulator({ apiKey: 'clinia-phi-key-0123456789', sourceKey: 'ehr-prod', pendingPolls: 1 })
  t.teardown(() => clinia.close())
  const ocl = await startOclSimulator({ exportPolls: 1 })
  t.teardown(() => ocl.close())
  const metriport = await startMetriportSimulator({ seed: 7, delayMs: 100 })
  t.teardown(() => metriport.close())
  const gw = await startGateway(t, {
    env: {
      RESULT_TTL_SECONDS: '2',
      SWEEP_INTERVAL_SECONDS: '3600',
      ...drchronoEnv(drchrono),
      CLINIKO_BASE_URL: cliniko.apiUrl,
      CLINIKO_API_KEY: SANDBOX_API_KEY,
      CLINIKO_USER_AGENT: 'bulk-gateway tests (tests@example.com)',
      CLINIA_BASE_URL: clinia.url,
      CLINIA_API_KEY: 'clinia-phi-key-0123456789',
      CLINIA_SOURCE_KEY: 'ehr-prod',
      CLINIA_POLL_INITIAL_MS: '5',
      CLINIA_POLL_MAX_MS: '20',
      OCL_BASE_URL: ocl.url,
      OCL_TOKEN: SANDBOX_OCL_TOKEN,
      OCL_EXPORT_POLL_SECONDS: '0.02',
      METRIPORT_BASE_URL: metriport.url,
      METRIPORT_API_KEY: METRIPORT.apiKey,
      METRIPORT_WEBHOOK_KEY: METRIPORT.webhookKey,
    },
  })
  metriport.state.setWebhookUrl(`${gw.url}/webhooks/metriport`)

  const operation = (n: number) => ({ action: 'CREATE', create: { id: `${MARK}-${n}`, type: 'provider', data: { name: `Dr ${MARK}`, specialities: ['Pharmacist'] } } })
  const ids = [
    await submit(gw, { upstream: 'drchrono', resource: 'appointments', params: { patient: Number(NUMERIC_MARK) } }, { 'idempotency-key': `key-${MARK}` }),
    await submit(gw, { upstream: 'drchrono', resource: 'patients', params: { last_name: MARK } }),
    await submit(gw, { upstream: 'cliniko', resource: 'patients', params: { q: [`last_name:=${MARK}`, `first_name:~${MARK}`] } }),
    await submit(gw, { upstream: 'clinia', resource: 'resources', operations: [operation(1), operation(2)] }),
    await submit(gw, { upstream: 'ocl', resource: 'export', params: { ownerType: 'orgs', owner: 'CIEL', source: 'CIEL', version: MARK } }),
    await submit(gw, { upstream: 'metriport', resource: 'document-download-urls', params: { patientId: SANDBOX_PATIENT_IDS[0], metadata: { note: MARK } } }),
    await submit(gw, { upstream: 'metriport', resource: 'document-download-urls', params: { patientId: MARK } }),
  ]
  const finished = await Promise.all(ids.map(id => waitForJob(gw, id, { until: job => job.completedAt !== null })))
  t.same(finished.map(j => j.upstream), ['drchrono', 'drchrono', 'cliniko', 'clinia', 'ocl', 'metriport', 'metriport'])
  t.ok(finished.some(j => j.status === 'completed' && j.progress.records > 0), 'some jobs stored results')
  t.ok(finished.some(j => j.status === 'failed'), 'some failed (an unknown patient or version), with error messages')
  const before = await dumpDatabase(gw.databaseUrl)
  t.ok(holding(before, MARK).includes('jobs') && holding(before, MARK).includes('result_pages') && holding(before, NUMERIC_MARK).includes('jobs'),
    'the markers were planted (found in jobs and results before expiry)')
  t.comment(`before expiry the marker is in: ${holding(before, MARK).join(', ')}; the numeric one in: ${holding(before, NUMERIC_MARK).join(', ')}`)

  const lastExpiry = Math.max(...finished.map(j => Date.parse(j.expiresAt)))
  await new Promise(resolve => setTimeout(resolve, Math.max(0, lastExpiry - Date.now()) + 1100))
  const report = await gw.app.sweeper.sweep()
  t.ok(report.erased >= ids.length - 1, `the sweep erased the jobs (${JSON.stringify(report)})`)

  const after = await dumpDatabase(gw.databaseUrl)
  t.ok(after.has('jobs') && after.has('idempotency_keys') && after.has('webhook_deliveries') && after.has('result_pages'), `every table dumped: ${[...after.keys()].join(', ')}`)
  t.equal(after.get('jobs')?.split('\n').length, ids.length, 'the jobs are still there (retention is 30 days)')
  t.same(holding(after, MARK), [], 'no table holds the marker')
  t.same(holding(after, NUMERIC_MARK), [], 'nor the numeric one')
  const logs = gw.logs.join('')
  t.notOk(logs.includes(MARK) || logs.includes(NUMERIC_MARK), 'and no log line held either')

  for (const id of ids) {
    const job = await (await gw.request(`/jobs/${id}`)).json()
    t.match(job, { params: null, upstreamInfo: null }, `${job.upstream}: the view shows params and upstreamInfo erased`)
    if (job.error !== null) t.match(job.error, { message: null, code: String }, 'an error keeps its code, not its message')
  }
})
