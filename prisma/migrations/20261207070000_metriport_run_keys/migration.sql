-- Written by hand: Metriport jobs now wait under their run (Metriport's requestId with the job's patientId,
-- src/upstreams/metriport/webhook.ts runKey), no longer under the requestId alone. Jobs parked before this
-- release move to the new key, spelled as JSON.stringify([requestId, patientId]) spells it (no spaces), so the
-- deliveries that finish them still find them.
UPDATE "jobs"
SET "waiting_for" = '[' || to_json("waiting_for")::text || ',' || to_json("params"->>'patientId')::text || ']'
WHERE "upstream" = 'metriport'
  AND "waiting_for" IS NOT NULL
  AND left("waiting_for", 1) <> '['
  AND "params"->>'patientId' IS NOT NULL;
