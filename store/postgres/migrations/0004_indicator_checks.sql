-- PostgreSQL only (SQLite records the version and keeps its checks).
-- An indicator row is written only in the statement that files its report
-- (fileNewPostgres, or insertIndicators in the same transaction), and no
-- report or incident is ever deleted; yet each row's two foreign keys cost
-- PostgreSQL a trigger and a query apiece at the end of that statement,
-- some forty per typical report: 7 % of the whole machine's CPU while
-- filing (perf, docs/benchmarks.md). SQLite checks a foreign key with a
-- B-tree lookup in the same call, and keeps them.
ALTER TABLE indicators DROP CONSTRAINT IF EXISTS indicators_report_id_fkey;
ALTER TABLE indicators DROP CONSTRAINT IF EXISTS indicators_incident_id_fkey;
