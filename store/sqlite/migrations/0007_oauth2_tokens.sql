-- OAuth2 refresh tokens of the mailboxes and the relay, by account. A token
-- endpoint may rotate the refresh token on every use; the new one is kept
-- here, where every daemon sharing the store (and taking a mailbox over)
-- finds it. seed_sha256 is the hash of the refresh_token_file content it
-- was seeded from, so that an operator who writes a new token there (after
-- a revocation) is heard.
CREATE TABLE oauth2_tokens (
    account       TEXT   NOT NULL PRIMARY KEY,
    refresh_token TEXT   NOT NULL,
    seed_sha256   TEXT   NOT NULL DEFAULT '',
    updated_at    BIGINT NOT NULL
);
