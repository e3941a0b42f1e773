// Package pipeline runs spooled messages through crypto → parse → store.
//
// A worker pool claims queue rows (with a lease) from the store, unwraps
// OpenPGP with crypto.Unwrap, parses the cleartext with parse.Parse and
// files the result with store.File, which also marks the row done in the
// same transaction. Every step before File is pure, so a crash anywhere
// re-runs the row from the start and File's idempotency per spool row
// guarantees the same result, never a second incident.
//
// A message that fails (a store error, a parser panic) is retried with
// back-off; after the last attempt it is quarantined with a reason code and
// never blocks the queue. `madoguchi reprocess` makes rows ready again.
package pipeline
