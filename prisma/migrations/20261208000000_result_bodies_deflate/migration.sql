-- Result bodies compressed by the gateway (deflate), not by PostgreSQL (docs/ARCHITECTURE.md, "The way a job
-- travels", step 5). Storing a 400 KB page as text cost PostgreSQL about 10 ms of CPU; deflate costs the gateway
-- under 2 ms, and PostgreSQL then stores the smaller bytes as they come. Rows stored before keep their text, now as
-- bytes (codec 0), still compressed by TOAST.

-- First, before any other lock: a gateway of the old version still writing finishes its page; its next write then
-- fails (it gives no codec) and its job is retried from its last saved page by a gateway of this version.
LOCK TABLE "result_pages" IN ACCESS EXCLUSIVE MODE;

-- AlterTable; written by hand: the stored rows are codec 0 (a default written to the catalog only, then dropped),
-- their lengths are filled in before the column becomes NOT NULL (octet_length reads a TOAST header, not the text),
-- and the text becomes bytes (a rewrite of the table).
ALTER TABLE "result_pages" ADD COLUMN "codec" SMALLINT NOT NULL DEFAULT 0,
ADD COLUMN "bytes" INTEGER;
ALTER TABLE "result_pages" ALTER COLUMN "codec" DROP DEFAULT;
UPDATE "result_pages" SET "bytes" = octet_length("body");
ALTER TABLE "result_pages" ALTER COLUMN "bytes" SET NOT NULL,
ALTER COLUMN "body" SET DATA TYPE BYTEA USING convert_to("body", 'UTF8');

-- New bodies arrive compressed, or are left as they are because deflate could not make them a quarter smaller:
-- TOAST stores them out of line when large, without trying pglz on them.
ALTER TABLE "result_pages" ALTER COLUMN "body" SET STORAGE EXTERNAL;
