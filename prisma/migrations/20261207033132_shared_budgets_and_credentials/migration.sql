-- AlterTable
ALTER TABLE "jobs" ADD COLUMN     "wait_reason" TEXT,
ADD COLUMN     "wait_until" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "upstream_budget_grants" (
    "id" BIGSERIAL NOT NULL,
    "key" TEXT NOT NULL,
    "client_id" TEXT NOT NULL,
    "sent_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "upstream_budget_grants_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "upstream_budget_pauses" (
    "key" TEXT NOT NULL,
    "paused_until" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "upstream_budget_pauses_pkey" PRIMARY KEY ("key")
);

-- CreateTable
CREATE TABLE "upstream_budget_waiters" (
    "key" TEXT NOT NULL,
    "waiter_id" TEXT NOT NULL,
    "client_id" TEXT NOT NULL,
    "seen_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "upstream_budget_waiters_pkey" PRIMARY KEY ("key","waiter_id")
);

-- CreateTable
CREATE TABLE "upstream_credentials" (
    "name" TEXT NOT NULL,
    "seed" TEXT NOT NULL,
    "key_id" TEXT NOT NULL,
    "ciphertext" BYTEA NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "upstream_credentials_pkey" PRIMARY KEY ("name")
);

-- CreateIndex
CREATE INDEX "upstream_budget_grants_key_sent_at_idx" ON "upstream_budget_grants"("key", "sent_at");
