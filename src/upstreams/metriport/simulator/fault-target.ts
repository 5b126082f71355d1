/**
 * Metriport under the fault campaign (simulator-kit/fault-target.ts): one start, then the simulator's signed
 * webhook to the gateway; the job's records are the documents of the webhook that named its run.
 */
import { serveUnderFire, type FaultTargetFactory } from '../../simulator-kit/fault-target.js'
import { SANDBOX_CREDENTIALS } from '../env.js'
import { withAddedFields } from '../webhook.js'
import { metriportSimulator, MetriportSimulatorState, sandboxPatientId } from './index.js'

export const metriportFaultTarget: FaultTargetFactory = async seed => {
  const state = new MetriportSimulatorState({ seed: 7, delayMs: 100, patientCount: 100 })
  const { wire, url, close } = await serveUnderFire(metriportSimulator, state, seed)
  return {
    name: 'metriport',
    wire,
    env: {
      METRIPORT_BASE_URL: url,
      METRIPORT_API_KEY: SANDBOX_CREDENTIALS.apiKey,
      METRIPORT_WEBHOOK_KEY: SANDBOX_CREDENTIALS.webhookKey,
      // A job whose webhook never comes fails with upstream_timeout after this: long enough for every retry here.
      METRIPORT_WEBHOOK_TIMEOUT_SECONDS: '40',
    },
    // Its API gateway's 429.
    throttle: n => wire.arm('throttle', n),
    throttled: () => wire.applied.throttle,
    body: i => ({ upstream: 'metriport', resource: 'document-download-urls', params: { patientId: sandboxPatientId(i) } }),
    expected: (job, body, stored) => {
      const requestId = job.upstreamInfo?.requestId
      const delivery = state.deliveries.find(d => d.kind === 'result' && d.requestId === requestId && d.ok)
      if (delivery === undefined) return null
      const patientId = (body.params as { patientId: string }).patientId
      const urlExpiresAt = stored.length > 0 ? String((JSON.parse(stored[0] as string) as { urlExpiresAt?: unknown }).urlExpiresAt) : ''
      const documents = (JSON.parse(delivery.body) as { patients: Array<{ documents?: Array<Record<string, unknown>> }> }).patients[0]?.documents ?? []
      return documents.map(d => withAddedFields(JSON.stringify(d), d, { patientId, urlExpiresAt }))
    },
    keepsFailedRecords: false,
    partial: null, // one start, one webhook: there is no middle
    connect: gatewayUrl => state.setWebhookUrl(`${gatewayUrl}/webhooks/metriport`),
    close: async () => {
      await state.close()
      await close()
    },
  }
}
