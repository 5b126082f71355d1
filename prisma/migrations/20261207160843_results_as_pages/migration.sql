-- Results stored as pages, not rows (docs/ARCHITECTURE.md, "Results"): one row per saved page (pages over 1 MiB
-- in parts), its records' text each followed by a line feed, and where each record ends.

-- First, before any other lock: a gateway of the old version still running finishes the page it is writing (it
-- holds a lock on job_results already), then its next write fails, as the table is gone, and its job is retried
-- from its last saved page by a gateway of this version. Taken later, after the foreign key below locks jobs, the
-- lock could deadlock with such a write (it locks its job row, then job_results, then updates jobs).
LOCK TABLE "job_results" IN ACCESS EXCLUSIVE MODE;

-- CreateTable
CREATE TABLE "result_pages" (
    "job_id" UUID NOT NULL,
    "page" INTEGER NOT NULL,
    "first" INTEGER NOT NULL,
    "count" INTEGER NOT NULL,
    "plain" BOOLEAN NOT NULL,
    "ends" INTEGER[],
    "body" TEXT NOT NULL,

    CONSTRAINT "result_pages_pkey" PRIMARY KEY ("job_id","page","first")
);

-- AddForeignKey
ALTER TABLE "result_pages" ADD CONSTRAINT "result_pages_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- As job_results was: rows that live an hour need no insert-triggered vacuum (see 20261124100000).
ALTER TABLE "result_pages" SET (autovacuum_vacuum_insert_threshold = -1);

-- lz4 compresses JSON text several times faster than PostgreSQL's own pglz, at about its ratio. A server built
-- without lz4 refuses the setting; it then keeps pglz.
DO $$
BEGIN
  ALTER TABLE "result_pages" ALTER COLUMN "body" SET COMPRESSION lz4, ALTER COLUMN "ends" SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'result_pages keeps pglz compression: %', SQLERRM;
END
$$;

-- The results already stored move to the new layout, with their pages and positions unchanged, so a cursor given out
-- before the upgrade goes on where it was.
INSERT INTO "result_pages" ("job_id", "page", "first", "count", "plain", "ends", "body")
SELECT job_id, page, min(position), count(*)::int,
  bool_and(strpos(record, E'\n') = 0 AND strpos(record, E'\r') = 0),
  array_agg((upto - 1 - part_start)::int ORDER BY position),
  string_agg(record || E'\n', '' ORDER BY position)
FROM (
  SELECT *, min(upto - len - 1) OVER (PARTITION BY job_id, page, part) AS part_start
  FROM (
    SELECT *, (upto - len - 1) / 1048576 AS part
    FROM (
      SELECT job_id, page, position, record, octet_length(record) AS len,
        sum(octet_length(record) + 1) OVER (PARTITION BY job_id, page ORDER BY position) AS upto
      FROM "job_results"
    ) AS r
  ) AS p
) AS q
GROUP BY job_id, page, part;

-- DropForeignKey
ALTER TABLE "job_results" DROP CONSTRAINT "job_results_job_id_fkey";

-- DropTable
DROP TABLE "job_results";
