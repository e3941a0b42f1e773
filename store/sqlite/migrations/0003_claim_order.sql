-- Claims take the oldest ready rows first (ORDER BY spool_id, id). With the
-- indexes on (state, not_before) both databases read every ready row and
-- sorted them to find the first few, so a claim cost as much as the backlog
-- was long, and a growing backlog made every claim slower still. Now each
-- state a claim looks for has a partial index of its own rows: a claim
-- walks the ready rows in order and stops after the batch (rows in back-off,
-- not_before in the future, are few and skipped as it goes), and finds rows
-- whose lease ran out by lease_until. Rows that are done leave both indexes,
-- so they stay as small as the work in hand. The claim queries name the
-- states as literals, which is how both databases know the indexes apply.
DROP INDEX queue_ready;
CREATE INDEX queue_ready ON queue (spool_id) WHERE state = 'ready';
CREATE INDEX queue_leased ON queue (lease_until, spool_id) WHERE state = 'claimed';
DROP INDEX outbox_ready;
CREATE INDEX outbox_pending ON outbox (id) WHERE state = 'pending';
CREATE INDEX outbox_leased ON outbox (lease_until, id) WHERE state = 'sending';
