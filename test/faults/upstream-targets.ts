/**
 * The five upstreams as the upstream-fault campaign fires at them: each simulator served alone with its wire
 * faults, the gateway variables that point at it, job bodies, and the exact records each job must end with
 * (computed from what the simulator holds: its seeded data, Clinia's tasks, Metriport's webhook deliveries).
 */
import type { Test } from 'tap'
import { cliniaSimulator, CliniaSimulatorState, goJson, SANDBOX_CREDENTIALS as CLINIA_CREDENTIALS } from '../../src/upstreams/clinia/simulator/index.js'
import { clinikoSimulator, ClinikoSimulatorState, expectedRecords as clinikoRecords, SANDBOX_API_KEY, SANDBOX_USER_AGENT } from '../../src/upstreams/cliniko/simulator/index.js'
import { drchronoSimulator, DrchronoSimulatorState, expectedRecords as drchronoRecords, SANDBOX_CREDENTIALS as DRCHRONO_CREDENTIALS } from '../../src/upstreams/drchrono/simulator/index.js'
import { WireFaults } from '../../src/upstreams/simulator-kit/wire-faults.js'
import { SANDBOX_CREDENTIALS as METRIPORT_CREDENTIALS } from '../../src/upstreams/metriport/env.js'
import { metriportSimulator, MetriportSimulatorState, sandboxPatientId } from '../../src/upstreams/metriport/simulator/index.js'
import { withAddedFields } from '../../src/upstreams/metriport/webhook.js'
import { expectedChanges, expectedExport, oclSimulator, OclSimulatorState, SANDBOX_OCL_TOKEN, type SimSource } from '../../src/upstreams/ocl/simulator/index.js'
import { serveSimulator } from '../../src/upstreams/simulator-kit/server.js'
import type { TestGateway } from '../helpers/gateway.js'
import type { JobView } from './campaign.js'

/** Operations per Clinia bulk request (CLINIA_MAX_OPERATIONS): a job of 10 operations is three chunks. */
const CLINIA_CHUNK = 4

const OCL_SOURCE: SimSource = {
  ownerType: 'orgs',
  owner: 'FAULTS',
  source: 'Small',
  public: true,
  concepts: 140,
  mappings: 90,
  versions: [
    { id: 'v2', released: true, createdOn: '2024-04-01T12:00:00Z' },
    { id: 'v1', released: true, createdOn: '2024-01-01T12:00:00Z' },
  ],
}

/** One upstream under fire: its simulator's wire faults, its own 429 burst, the job bodies and their exact records. */
export interface Target {
  name: string
  wire: WireFaults
  /** The upstream's own 429 answer, `n` times in a row (Metriport: its API gateway's). */
  throttle (n: number): void
  /** 429s answered so far. */
  throttled (): number
  /** The i-th job's body; bodies differ, so that no two jobs are deduplicated into one. */
  body (i: number): Record<string, unknown>
  /** What the simulator holds for the job, as the text the gateway must store, in order; null when it holds nothing. */
  expected (job: JobView, body: Record<string, unknown>, stored: readonly string[]): string[] | null
  /** Whether a failed job keeps records a client may read (Clinia's receipts; docs/API.md). */
  keepsFailedRecords: boolean
  /** A job that stores its first page after `after` requests, to be spoiled in the middle; null when it has one step. */
  partial: { after: number, body: (i: number) => Record<string, unknown> } | null
}

/** The five simulators, each on its own loopback port with its own seeded wire faults; closed at the test's end. */
export async function startTargets (t: Test, seed: number): Promise<{ targets: Target[], env: Record<string, string>, connect (gw: TestGateway): void }> {
  const wire = (n: number) => new WireFaults({ seed: seed + n })

  const drchronoCounts = { appointments: 180 }
  const drchrono = { state: new DrchronoSimulatorState({ seed: 7, inProgressPolls: 1, recordCount: drchronoCounts }), wire: wire(1) }
  const clinikoCounts = { patients: 150 }
  const cliniko = { state: new ClinikoSimulatorState({ seed: 7, rateLimit: 0, recordCount: clinikoCounts }), wire: wire(2) }
  const oclOptions = { seed: 7, sources: [OCL_SOURCE] }
  const ocl = { state: new OclSimulatorState({ ...oclOptions, exportPolls: 1 }), wire: wire(3) }
  const clinia = { state: new CliniaSimulatorState({ pendingPolls: 1 }), wire: wire(4) }
  const metriport = { state: new MetriportSimulatorState({ seed: 7, delayMs: 100, patientCount: 100 }), wire: wire(5) }

  const servers = [
    await serveSimulator(drchronoSimulator, drchrono.state, { wireFaults: drchrono.wire }),
    await serveSimulator(clinikoSimulator, cliniko.state, { wireFaults: cliniko.wire }),
    await serveSimulator(oclSimulator, ocl.state, { wireFaults: ocl.wire }),
    await serveSimulator(cliniaSimulator, clinia.state, { wireFaults: clinia.wire }),
    await serveSimulator(metriportSimulator, metriport.state, { wireFaults: metriport.wire }),
  ]
  t.teardown(async () => {
    await metriport.state.close()
    for (const s of servers) await s.close()
  })
  const [drchronoUrl, clinikoUrl, oclUrl, cliniaUrl, metriportUrl] = servers.map(s => s.url) as [string, string, string, string, string]
  const env = {
    DRCHRONO_BASE_URL: drchronoUrl,
    DRCHRONO_ACCESS_TOKEN: DRCHRONO_CREDENTIALS.accessToken,
    DRCHRONO_POLL_INTERVAL_MS: '20',
    DRCHRONO_PAGE_CONCURRENCY: '3',
    CLINIKO_BASE_URL: `${clinikoUrl}/v1`,
    CLINIKO_API_KEY: SANDBOX_API_KEY,
    CLINIKO_USER_AGENT: SANDBOX_USER_AGENT,
    CLINIKO_REQUESTS_PER_MINUTE: '10000',
    OCL_BASE_URL: oclUrl,
    OCL_TOKEN: SANDBOX_OCL_TOKEN,
    OCL_EXPORT_POLL_SECONDS: '0.02',
    CLINIA_BASE_URL: cliniaUrl,
    CLINIA_API_KEY: CLINIA_CREDENTIALS.apiKey,
    CLINIA_SOURCE_KEY: CLINIA_CREDENTIALS.sourceKey,
    CLINIA_MAX_OPERATIONS: String(CLINIA_CHUNK),
    CLINIA_POLL_INITIAL_MS: '10',
    CLINIA_POLL_MAX_MS: '50',
    METRIPORT_BASE_URL: metriportUrl,
    METRIPORT_API_KEY: METRIPORT_CREDENTIALS.apiKey,
    METRIPORT_WEBHOOK_KEY: METRIPORT_CREDENTIALS.webhookKey,
    // A job whose webhook never comes fails with upstream_timeout after this: long enough for every retry here.
    METRIPORT_WEBHOOK_TIMEOUT_SECONDS: '40',
  }

  const text = (records: Array<Record<string, unknown>>) => records.map(r => JSON.stringify(r))
  const list: Target[] = [
    {
      name: 'drchrono',
      wire: drchrono.wire,
      throttle: n => drchrono.state.throttleNext(n, 1),
      throttled: () => drchrono.state.stats.throttled,
      body: i => ({ upstream: 'drchrono', resource: 'appointments', params: { page_size: 30 + i } }),
      expected: (_job, body) => text(drchronoRecords('appointments', body.params as Record<string, number>, { seed: 7, recordCount: drchronoCounts })),
      keepsFailedRecords: false,
      // Pages 1..3 go out together (DRCHRONO_PAGE_CONCURRENCY=3): 3 POSTs, 3 "In progress" polls, 3 Complete polls.
      // The fault strikes the 10th answer, after at least one page has been handed to be saved.
      partial: { after: 9, body: i => ({ upstream: 'drchrono', resource: 'appointments', params: { page_size: 30 + i } }) },
    },
    {
      name: 'cliniko',
      wire: cliniko.wire,
      throttle: n => cliniko.state.throttleNext(n, 1),
      throttled: () => cliniko.state.stats.throttled,
      body: i => ({ upstream: 'cliniko', resource: 'patients', params: { per_page: 25 + i } }),
      expected: (_job, body) => clinikoRecords('patients', body.params as { per_page: number }, { seed: 7, recordCount: clinikoCounts }),
      keepsFailedRecords: false,
      partial: { after: 1, body: i => ({ upstream: 'cliniko', resource: 'patients', params: { per_page: 25 + i } }) },
    },
    {
      name: 'ocl',
      wire: ocl.wire,
      throttle: n => ocl.state.throttleNext(n),
      throttled: () => ocl.state.stats.throttled,
      // Exports (the version lookup, the export state machine, the signed download) and changes (the paged
      // lists), by turns. The first answer of both is JSON, for the faults that spoil one.
      body: i => i % 2 === 0
        ? { upstream: 'ocl', resource: 'export', params: { ownerType: 'orgs', owner: 'FAULTS', source: 'Small', version: 'latest', includeRetired: i % 4 === 0 } }
        : { upstream: 'ocl', resource: 'changes', params: { ownerType: 'orgs', owner: 'FAULTS', source: 'Small', updatedSince: `2023-0${1 + (i % 9)}-01`, includeRetired: i % 3 === 0 } },
      expected: (job, body) => {
        const p = body.params as { version?: string, updatedSince?: string, includeRetired: boolean }
        const at = { ownerType: 'orgs', owner: 'FAULTS', source: 'Small' }
        if (body.resource === 'changes') return expectedChanges(oclOptions, { ...at, sinceMs: Date.parse(p.updatedSince as string), includeRetired: p.includeRetired })
        return expectedExport(oclOptions, { ...at, version: String(job.upstreamInfo?.version ?? (p.version === 'latest' ? 'v2' : p.version)) })
      },
      keepsFailedRecords: false,
      // A changes job: concepts page 1 and the mappings total, then the save, then mappings page 1.
      partial: { after: 2, body: i => ({ upstream: 'ocl', resource: 'changes', params: { ownerType: 'orgs', owner: 'FAULTS', source: 'Small', updatedSince: '2000-01-01', includeRetired: i % 2 === 0 } }) },
    },
    {
      name: 'clinia',
      wire: clinia.wire,
      throttle: n => clinia.state.failNext(n, 429, 'any', 0),
      throttled: () => clinia.state.stats.throttled,
      body: i => ({
        upstream: 'clinia',
        resource: 'resources',
        operations: Array.from({ length: 10 }, (_, k) => ({ action: 'UPSERT', upsert: { id: `job${i}-p${k}`, type: 'provider', data: { name: `Provider ${i}.${k}` } } })),
      }),
      // Receipts of the tasks the job recorded, as Clinia wrote them, each with its index spliced in.
      expected: (job, body) => {
        const taskIds = (job.upstreamInfo?.taskIds ?? []) as string[]
        const count = (body.operations as unknown[]).length
        const out: string[] = []
        for (let i = 0; i < count; i++) {
          const receipt = clinia.state.tasks.get(taskIds[Math.floor(i / CLINIA_CHUNK)] ?? '')?.receipts?.[i % CLINIA_CHUNK]
          if (receipt === undefined) break
          out.push(`{"index":${i},${goJson(receipt).slice(1)}`)
        }
        return out
      },
      keepsFailedRecords: true,
      // Chunk 1: submit, one PENDING poll, the poll with receipts; then chunk 2's submit.
      partial: { after: 3, body: i => ({ upstream: 'clinia', resource: 'resources', operations: Array.from({ length: 10 }, (_, k) => ({ action: 'UPSERT', upsert: { id: `job${i}-p${k}`, type: 'provider', data: { name: `Provider ${i}.${k}` } } })) }) },
    },
    {
      name: 'metriport',
      wire: metriport.wire,
      throttle: n => metriport.wire.arm('throttle', n),
      throttled: () => metriport.wire.applied.throttle,
      body: i => ({ upstream: 'metriport', resource: 'document-download-urls', params: { patientId: sandboxPatientId(i) } }),
      // The documents of the webhook that named the job's run, with the two fields the gateway adds.
      expected: (job, body, stored) => {
        const requestId = job.upstreamInfo?.requestId
        const delivery = metriport.state.deliveries.find(d => d.kind === 'result' && d.requestId === requestId && d.ok)
        if (delivery === undefined) return null
        const patientId = (body.params as { patientId: string }).patientId
        const urlExpiresAt = stored.length > 0 ? String((JSON.parse(stored[0] as string) as { urlExpiresAt?: unknown }).urlExpiresAt) : ''
        const documents = (JSON.parse(delivery.body) as { patients: Array<{ documents?: Array<Record<string, unknown>> }> }).patients[0]?.documents ?? []
        return documents.map(d => withAddedFields(JSON.stringify(d), d, { patientId, urlExpiresAt }))
      },
      keepsFailedRecords: false,
      partial: null, // one start, one webhook: there is no middle
    },
  ]
  return {
    targets: list,
    env,
    connect: gw => metriport.state.setWebhookUrl(`${gw.url}/webhooks/metriport`),
  }
}
