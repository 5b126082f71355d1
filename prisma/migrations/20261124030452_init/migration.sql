-- The generated `CREATE SCHEMA IF NOT EXISTS "public";` was left out by hand (as scripts/migration-diff.ts
-- now does): every database has that schema, and the statement needs CREATE on the database even when the
-- schema exists, which an application role often lacks ("permission denied for database").

-- CreateEnum
CREATE TYPE "JobStatus" AS ENUM ('queued', 'running', 'completed', 'failed', 'cancelled', 'expired');

-- CreateTable
CREATE TABLE "jobs" (
    "id" UUID NOT NULL,
    "client_id" TEXT NOT NULL,
    "upstream" TEXT NOT NULL,
    "resource" TEXT NOT NULL,
    "params" JSONB NOT NULL,
    "payload" JSONB,
    "request_hash" TEXT NOT NULL,
    "status" "JobStatus" NOT NULL DEFAULT 'queued',
    "checkpoint" JSONB,
    "records" INTEGER NOT NULL DEFAULT 0,
    "pages_done" INTEGER NOT NULL DEFAULT 0,
    "pages_total" INTEGER,
    "percent" DOUBLE PRECISION,
    "error_code" TEXT,
    "error_message" TEXT,
    "upstream_status" INTEGER,
    "upstream_info" JSONB,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "lease_owner" TEXT,
    "lease_expires_at" TIMESTAMPTZ(3),
    "run_after" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "expires_at" TIMESTAMPTZ(3),

    CONSTRAINT "jobs_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "job_results" (
    "job_id" UUID NOT NULL,
    "page" INTEGER NOT NULL,
    "position" INTEGER NOT NULL,
    "record" TEXT NOT NULL,

    CONSTRAINT "job_results_pkey" PRIMARY KEY ("job_id","page","position")
);

-- CreateTable
CREATE TABLE "idempotency_keys" (
    "client_id" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "request_hash" TEXT NOT NULL,
    "job_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "idempotency_keys_pkey" PRIMARY KEY ("client_id","key")
);

-- CreateIndex
CREATE INDEX "jobs_client_id_created_at_idx" ON "jobs"("client_id", "created_at" DESC);

-- CreateIndex
CREATE INDEX "jobs_status_run_after_idx" ON "jobs"("status", "run_after");

-- CreateIndex
CREATE INDEX "jobs_status_lease_expires_at_idx" ON "jobs"("status", "lease_expires_at");

-- CreateIndex
CREATE INDEX "jobs_expires_at_idx" ON "jobs"("expires_at");

-- AddForeignKey
ALTER TABLE "job_results" ADD CONSTRAINT "job_results_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Written by hand, below the generated SQL: schema.prisma cannot express a partial unique index.
-- At most one queued or running read job per (client, request hash), so a retried POST joins the job already
-- in flight instead of starting a second one. Write jobs (payload set) are never deduplicated this way.
-- "payload IS NULL" means SQL NULL: create read jobs without a payload (or Prisma.DbNull), never Prisma.JsonNull.
-- scripts/migration-diff.ts keeps later diffs from dropping it.
CREATE UNIQUE INDEX "jobs_inflight_dedupe" ON "jobs" ("client_id", "request_hash") WHERE "status" IN ('queued', 'running') AND "payload" IS NULL;
