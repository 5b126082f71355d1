/** The upstream fault campaign (upstream-campaign.ts) over every upstream the gateway registers. */
import t from 'tap'
import { registry } from '../../src/upstreams/registry.js'
import { runUpstreamCampaign } from './upstream-campaign.js'

t.test('upstream faults on every upstream: exact records or a stable error, never a hang', async t => {
  await runUpstreamCampaign(t, registry)
})
