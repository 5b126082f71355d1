-- AlterTable
ALTER TABLE "jobs" ADD COLUMN     "failed" INTEGER,
ADD COLUMN     "succeeded" INTEGER,
ADD COLUMN     "waiting_for" TEXT;

-- CreateTable
CREATE TABLE "webhook_deliveries" (
    "upstream" TEXT NOT NULL,
    "message_id" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "outcome" JSONB NOT NULL,
    "job_id" UUID,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "webhook_deliveries_pkey" PRIMARY KEY ("upstream","message_id")
);

-- CreateIndex
CREATE INDEX "webhook_deliveries_upstream_key_idx" ON "webhook_deliveries"("upstream", "key");

-- CreateIndex
CREATE INDEX "jobs_upstream_waiting_for_idx" ON "jobs"("upstream", "waiting_for");
