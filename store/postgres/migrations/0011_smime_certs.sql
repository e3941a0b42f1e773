-- Version 11: correspondents' S/MIME certificates, harvested from their
-- good signatures, so that answers to them can be encrypted. One per
-- address: the one valid longest.
CREATE TABLE smime_certs (
    email       TEXT   NOT NULL PRIMARY KEY,
    sha256      TEXT   NOT NULL,
    der         BYTEA  NOT NULL,
    not_after   BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
