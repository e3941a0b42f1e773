-- The raw messages and the report JSON are large values that PostgreSQL
-- compresses when it stores them out of line (TOAST). Its default, pglz,
-- was the largest single cost of the server while the daemon filed
-- (docs/benchmarks.md); LZ4 does the same work for a fraction of it. Where
-- the server was built without LZ4 nothing changes; values already stored
-- keep their compression.
DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN ALTER TABLE spool ALTER COLUMN raw SET COMPRESSION lz4; ALTER TABLE spool_chunks ALTER COLUMN data SET COMPRESSION lz4; ALTER TABLE reports ALTER COLUMN report_json SET COMPRESSION lz4; END IF; END $$;
