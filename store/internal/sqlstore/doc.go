// Package sqlstore is what the SQLite and PostgreSQL stores share: the
// operations that are the same SQL on both (written with ? placeholders,
// which a driver rebinds), the migration runner, and filing's decisions
// (file.go), between a driver's Lookup and Write. A driver supplies a
// Dialect and embeds DB; nothing here names a driver.
package sqlstore
