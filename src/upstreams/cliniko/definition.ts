/** Cliniko: read jobs over its link-paginated REST lists (GET a page, follow `links.next`). */
import type { FastifyPluginAsync } from 'fastify'
import type { SimulatorMountOptions, UpstreamDefinition } from '../types.js'
import { clinikoAdapter } from './adapter.js'
import { CLINIKO_RESOURCES, FILTER_EXAMPLES, clinikoParams, type ClinikoResource } from './params.js'
import { clinikoEnv, settingsFromEnv, type ClinikoEnv, type ClinikoSettings } from './env.js'
import { SANDBOX_USER_AGENT, clinikoSimulator } from './simulator/index.js'
import { clinikoFaultTarget } from './simulator/fault-target.js'

const DESCRIPTIONS: Record<ClinikoResource, string> = {
  patients: 'Patients, without archived and deleted ones (see archived_patients, deleted_patients). Ids are int64 strings.',
  individual_appointments: 'One-patient appointments, without cancelled and deleted ones (see the variants).',
  group_appointments: 'Group appointments (classes); their attendees are listed by attendees.',
  appointment_types: 'Appointment types with duration, colour and online-booking settings.',
  attendees: 'Patients booked into group appointments.',
  businesses: 'The clinic\'s businesses (locations).',
  invoices: 'Invoices with their totals and status.',
  invoice_items: 'Lines of invoices.',
  practitioners: 'Practitioners who take appointments.',
  products: 'Products sold by the clinic.',
  services: 'Billable services.',
  treatment_notes: 'Clinical treatment notes.',
  users: 'Users of the Cliniko account.',
  deleted_patients: 'Deleted patients (GET /patients/deleted); records as in patients.',
  archived_patients: 'Archived patients (GET /patients/archived); records as in patients.',
  deleted_individual_appointments: 'Deleted individual appointments (GET /individual_appointments/deleted).',
  cancelled_individual_appointments: 'Cancelled individual appointments (GET /individual_appointments/cancelled).',
}

/** The sandbox simulator answers each page after a short wait, so a newcomer's job runs for a few seconds. */
const sandboxSimulator: FastifyPluginAsync<SimulatorMountOptions<'apiKey'>> = async (app, { credentials }) => {
  // It plays the au1 shard; the key it knows is the drawn one, with or without that suffix.
  await clinikoSimulator(app, { latencyMs: 120, apiKeys: [credentials.apiKey] })
}

export const cliniko: UpstreamDefinition<ClinikoEnv, ClinikoSettings, 'apiKey'> = {
  name: 'cliniko',
  kind: 'read',
  title: 'Cliniko',
  secretHeaders: [],
  description: 'Cliniko practice management: REST lists read page by page through links.next, 200 requests a minute per API key.',
  resources: Object.fromEntries(CLINIKO_RESOURCES.map(resource => [resource, {
    description: DESCRIPTIONS[resource],
    params: clinikoParams[resource],
    example: { q: [FILTER_EXAMPLES[resource]] },
  }])),
  env: clinikoEnv,
  settingsFromEnv,
  simulator: {
    credentials: ['apiKey'],
    plugin: sandboxSimulator,
    faultTarget: clinikoFaultTarget,
    sandboxSettings: (baseUrl, credentials) => ({
      baseUrl: `${baseUrl.replace(/\/+$/, '')}/v1`,
      apiKey: `${credentials.apiKey}-au1`,
      userAgent: SANDBOX_USER_AGENT,
      requestsPerMinute: 200,
    }),
  },
  createAdapter: (settings, client, services) => clinikoAdapter(settings, client, services),
}
