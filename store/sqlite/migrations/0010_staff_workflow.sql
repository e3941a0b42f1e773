-- Version 10: the staff workflow (issue #18). An incident's priority
-- (P1-P4), the resolution staff typed when resolving it, and the incident
-- it was merged into (0: none; its ticket then threads to that one).
-- Sessions of staff signed in from a browser: the cookie's SHA-256, who,
-- the token line that signed in (a session ends when that line leaves the
-- tokens file), the form token and the expiry.
ALTER TABLE incidents ADD COLUMN priority TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN resolution TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN merged_into BIGINT NOT NULL DEFAULT 0;
CREATE TABLE staff_sessions (
    id          TEXT   NOT NULL PRIMARY KEY,
    actor       TEXT   NOT NULL,
    token_line  TEXT   NOT NULL,
    csrf        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX staff_sessions_expires ON staff_sessions (expires_at);
