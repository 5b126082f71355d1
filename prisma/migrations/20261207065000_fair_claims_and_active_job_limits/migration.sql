-- Written by hand: schema.prisma cannot express partial indexes.
-- A client's queued and running jobs, in claim order. It serves the three questions asked per client
-- (src/db/sql/jobs.ts, src/db/sql/job-insert.ts): how many jobs it has active (MAX_ACTIVE_JOBS_PER_CLIENT),
-- how many it has running, and which of its queued jobs is next; and it lists the clients that have queued
-- jobs by skipping from one client to the next. It holds only live jobs, so its size follows the queue, not
-- the history.
CREATE INDEX "jobs_active_by_client" ON "jobs" ("client_id", "status", "run_after", "created_at") WHERE "status" IN ('queued', 'running');

-- Each client's jobs by start time: when the claim weighs clients with as many jobs running, the one whose last
-- job started longest ago goes first (round robin). One probe per client, from the newest end.
CREATE INDEX "jobs_started_by_client" ON "jobs" ("client_id", "started_at") WHERE "started_at" IS NOT NULL;
