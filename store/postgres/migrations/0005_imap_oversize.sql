-- Messages a poller left in their mailbox because they were over the size
-- limit. The poller's last UID moves past them (later messages are not held
-- up), so without this list the next pass would take one for "spooled, not
-- yet moved" and move it unfiled. A row goes in the transaction that spools
-- the notice staff see, and out in the one that spools the message itself
-- once the limit allows it.
CREATE TABLE imap_oversize (
    mailbox_key TEXT   NOT NULL,
    uidvalidity BIGINT NOT NULL,
    uid         BIGINT NOT NULL,
    size        BIGINT NOT NULL,
    held_at     BIGINT NOT NULL,
    PRIMARY KEY (mailbox_key, uidvalidity, uid)
);
