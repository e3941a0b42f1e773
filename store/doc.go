// Package store is the contract between madoguchi and its database: the
// Store interface (the operations the pipeline, intake, notify, web and
// the commands use), the types they exchange, and the group committer.
// The databases are packages of their own: store/sqlite (modernc.org/sqlite,
// pure Go, the embedded default) and store/postgres (pgx through
// database/sql), each with its own migrations and SQL; what is the same SQL
// on both, and filing's decisions, are in store/internal/sqlstore.
// internal/stores opens one by the configuration's driver name. One
// conformance suite (conformance_test.go) runs every test against both.
//
// Invariants:
//   - Spool is the acceptance point: it commits the raw bytes and the queue
//     row in one transaction; only after it returns nil may a sender be told
//     250 or an IMAP message be moved.
//   - FileBatch is idempotent per spool row: it files the report,
//     indicators, events, thread IDs and the acknowledgement row AND marks
//     the queue row done in one transaction, so a crash before or after
//     leaves either nothing or everything, and a re-run of the same spool
//     row updates the report instead of opening a second incident.
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
// Times are stored as Unix microseconds (BIGINT) in both dialects.
package store
