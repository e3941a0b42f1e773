// Package store keeps everything madoguchi knows: the spool of raw messages,
// the work queue over it, incidents with their ticket IDs, reports,
// indicators, the event log, thread Message-IDs, the outbox and IMAP state.
//
// Two drivers sit behind one type, *Store: SQLite (modernc.org/sqlite, pure
// Go, the embedded default) and PostgreSQL (pgx v5 through database/sql;
// a batch of plain new filings goes as pgx pipelines on the connection
// underneath, see filePlainPipelined). Most of the SQL text is shared;
// where PostgreSQL saves round trips it has statements of its own
// (fileBatchPostgres, ClaimMessages), held to the same results by the
// conformance suite. They share one migration history (migrations/*.sql, with
// {{ID}} and {{BLOB}} replaced per dialect) and one conformance suite
// (conformance_test.go runs every test against both).
//
// Invariants:
//   - Spool is the acceptance point: it commits the raw bytes and the queue
//     row in one transaction; only after it returns nil may a sender be told
//     250 or an IMAP message be moved.
//   - File is idempotent per spool row: it files the report, indicators,
//     events, thread IDs and the acknowledgement row AND marks the queue row
//     done in one transaction, so a crash before or after leaves either
//     nothing or everything, and a re-run of the same spool row updates the
//     report instead of opening a second incident.
//   - A Message-ID (or, lacking one, the raw SHA-256) is filed once; later
//     copies only add a "duplicate" event.
//   - Ticket numbers come from ticket_counters, one row per year, bumped
//     inside the filing transaction (row lock on PostgreSQL, the single
//     writer on SQLite), so they are sequential per year and unique across
//     daemons.
//   - Queue and outbox claims on PostgreSQL use FOR UPDATE SKIP LOCKED, so
//     several daemons share them without coordination code. An expired lease
//     returns a crashed worker's claim.
//
// On PostgreSQL the daemon also keeps the planner's statistics of these
// tables within a factor of two of their size while they grow
// (KeepPlannerStatistics): the statements are prepared once per
// connection, and plans made for empty tables would otherwise scan them.
//
// Times are stored as Unix microseconds (BIGINT) in both dialects.
package store
