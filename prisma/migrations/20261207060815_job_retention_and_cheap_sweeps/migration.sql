-- AlterTable
ALTER TABLE "jobs" ADD COLUMN     "erased_at" TIMESTAMPTZ(3),
ADD COLUMN     "purge_pending" BOOLEAN NOT NULL DEFAULT false,
ALTER COLUMN "params" DROP NOT NULL,
ALTER COLUMN "request_hash" DROP NOT NULL;

-- CreateIndex
CREATE INDEX "idempotency_keys_created_at_idx" ON "idempotency_keys"("created_at");

-- CreateIndex
CREATE INDEX "idempotency_keys_job_id_idx" ON "idempotency_keys"("job_id");

-- CreateIndex
CREATE INDEX "webhook_deliveries_received_at_idx" ON "webhook_deliveries"("received_at");

-- Written by hand, below the generated SQL: schema.prisma cannot express partial indexes.
-- Each indexes only what a sweep still has to do, so a sweep costs what it does, not the history the table
-- holds (src/db/sql/expiry.ts): finished jobs whose patient data is not erased yet, jobs whose result rows are
-- due for deletion, and erased jobs waiting for JOB_RETENTION_DAYS to pass.
CREATE INDEX "jobs_erase_due" ON "jobs" ("expires_at") WHERE "erased_at" IS NULL AND "expires_at" IS NOT NULL;
CREATE INDEX "jobs_purge_pending" ON "jobs" ("id") WHERE "purge_pending";
CREATE INDEX "jobs_retention_due" ON "jobs" ("finished_at") WHERE "erased_at" IS NOT NULL;

-- Idempotency keys are kept as digests from now on (src/engine/idempotency.ts): the keys stored so far become
-- theirs, so a replay within IDEMPOTENCY_KEY_TTL_HOURS of the upgrade still finds its job.
UPDATE "idempotency_keys" SET
  "key" = encode(sha256(convert_to("key", 'UTF8')), 'hex'),
  "request_hash" = encode(sha256(convert_to("key" || E'\n' || "request_hash", 'UTF8')), 'hex');
