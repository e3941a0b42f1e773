-- Messages larger than the in-memory threshold are spooled in chunks, so
-- that neither the listener nor the store ever holds them whole while they
-- are being accepted. spool.raw is empty for them and spool.size is the
-- whole size; the chunks, in seq order, are the message byte for byte.
CREATE TABLE spool_chunks (
    spool_id BIGINT NOT NULL REFERENCES spool (id),
    seq      INTEGER NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (spool_id, seq)
);
