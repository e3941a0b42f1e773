-- The hourly budgets of acknowledgements per domain and in all count the
-- rows of the last hour by their time: an index on it, so that the count
-- reads that hour's rows and not the whole outbox.
CREATE INDEX outbox_created ON outbox (created_at);
