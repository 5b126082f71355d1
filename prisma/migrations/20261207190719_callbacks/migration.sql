-- CreateEnum
CREATE TYPE "CallbackStatus" AS ENUM ('pending', 'delivered', 'failed');

-- AlterTable
ALTER TABLE "jobs" ADD COLUMN     "callback_attempts" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "callback_last_error" TEXT,
ADD COLUMN     "callback_lease_owner" TEXT,
ADD COLUMN     "callback_next_at" TIMESTAMPTZ(3),
ADD COLUMN     "callback_status" "CallbackStatus",
ADD COLUMN     "callback_url" TEXT;

-- Written by hand, below the generated SQL: schema.prisma cannot express partial indexes.
-- The deliverer's claim (src/db/sql/callbacks.ts) reads only the callbacks still to deliver of jobs that have
-- ended: due, or waiting for a retry. Those of jobs still queued or running enter it when their job ends, and
-- delivered and failed ones leave it.
CREATE INDEX "jobs_callback_pending" ON "jobs" ("callback_next_at")
  WHERE "callback_status" = 'pending' AND "status" IN ('completed', 'failed', 'cancelled', 'expired');
