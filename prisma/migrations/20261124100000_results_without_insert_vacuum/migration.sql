-- Results live for RESULT_TTL_SECONDS (an hour by default) and are then deleted by the sweeper.
-- A vacuum triggered by inserts only freezes rows and sets visibility bits, which rows this short-lived never
-- need, and during a large ingest it ran again and again over the growing table (8 times in one
-- 1,000,000-record job with a 5 s autovacuum_naptime, 25.8 against 20.1 microseconds of PostgreSQL CPU
-- per record). Vacuums after the sweeper's deletes
-- (dead rows) and anti-wraparound vacuums still run as usual.
ALTER TABLE "job_results" SET (autovacuum_vacuum_insert_threshold = -1);
