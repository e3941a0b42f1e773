-- madoguchi schema, version 1 (SQLite). The PostgreSQL driver has the same
-- history in its dialect; times are Unix microseconds (BIGINT) everywhere.

CREATE TABLE spool (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256      TEXT   NOT NULL,
    channel     TEXT   NOT NULL,
    mail_from   TEXT   NOT NULL,
    rcpt_to     TEXT   NOT NULL,
    peer        TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    size        BIGINT NOT NULL,
    raw         BLOB NOT NULL
);
CREATE INDEX spool_sha256 ON spool (sha256);
CREATE INDEX spool_received ON spool (received_at);

-- The work queue: one row per spooled message.
-- state: ready | claimed | done | quarantined
CREATE TABLE queue (
    spool_id    BIGINT NOT NULL PRIMARY KEY REFERENCES spool (id),
    state       TEXT   NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    worker      TEXT   NOT NULL DEFAULT '',
    last_error  TEXT   NOT NULL DEFAULT '',
    reason      TEXT   NOT NULL DEFAULT '',
    outcome     TEXT   NOT NULL DEFAULT '',
    updated_at  BIGINT NOT NULL
);
CREATE INDEX queue_ready ON queue (state, not_before);

CREATE TABLE ticket_counters (
    year INTEGER NOT NULL PRIMARY KEY,
    last INTEGER NOT NULL
);

CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket      TEXT   NOT NULL UNIQUE,
    status      TEXT   NOT NULL,
    taxonomy    TEXT   NOT NULL DEFAULT '',
    type        TEXT   NOT NULL DEFAULT '',
    subject     TEXT   NOT NULL DEFAULT '',
    requester   TEXT   NOT NULL DEFAULT '',
    assignee    TEXT   NOT NULL DEFAULT '',
    tlp         TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX incidents_created ON incidents (created_at);

CREATE TABLE reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    spool_id    BIGINT NOT NULL UNIQUE REFERENCES spool (id),
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    message_id  TEXT   NOT NULL,
    dedup_key   TEXT   NOT NULL UNIQUE,
    sender      TEXT   NOT NULL DEFAULT '',
    report_json TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX reports_incident ON reports (incident_id);

CREATE TABLE indicators (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id   BIGINT NOT NULL REFERENCES reports (id),
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    kind        TEXT   NOT NULL,
    value       TEXT   NOT NULL
);
CREATE INDEX indicators_value ON indicators (value);
CREATE INDEX indicators_report ON indicators (report_id);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    at          BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    actor       TEXT   NOT NULL DEFAULT '',
    detail      TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX events_incident ON events (incident_id);

-- Message-IDs the gateway has seen (reports) and sent (acks), for threading.
CREATE TABLE thread_ids (
    message_id  TEXT   NOT NULL PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES incidents (id)
);

-- Outbound messages (acknowledgements, alerts).
-- state: pending | sending | sent | dead
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    report_id   BIGINT REFERENCES reports (id),
    kind        TEXT   NOT NULL,
    recipient   TEXT   NOT NULL,
    message_id  TEXT   NOT NULL UNIQUE,
    payload     TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX outbox_ready ON outbox (state, not_before);
CREATE INDEX outbox_recipient ON outbox (recipient, created_at);

-- IMAP poller state per mailbox.
CREATE TABLE imap_state (
    mailbox_key TEXT   NOT NULL PRIMARY KEY,
    uidvalidity BIGINT NOT NULL,
    last_uid    BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
