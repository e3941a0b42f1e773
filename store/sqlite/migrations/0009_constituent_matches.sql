-- Version 9: which constituents a report is about (issue #19). A row per
-- indicator of a report that belongs to a constituent; noticed_at is 0
-- until the noticer has put it into a notice (or decided that none goes),
-- so that matches filed within one aggregation window share one notice.
CREATE TABLE constituent_matches (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id   BIGINT NOT NULL REFERENCES reports (id),
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    constituent TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    value       TEXT   NOT NULL,
    tlp         TEXT   NOT NULL DEFAULT '',
    noticed_at  BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);
CREATE INDEX constituent_matches_incident ON constituent_matches (incident_id);
CREATE INDEX constituent_matches_report ON constituent_matches (report_id);
CREATE INDEX constituent_matches_constituent ON constituent_matches (constituent, incident_id);
CREATE INDEX constituent_matches_pending ON constituent_matches (constituent, id) WHERE noticed_at = 0;
