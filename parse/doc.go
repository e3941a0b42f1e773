// Package parse turns the bytes of one (already decrypted) message into a
// Report an analyst can trust: decoded text in any charset, attachments,
// forwarded messages, ARF / X-ARF / IODEF, indicators, an RSIT
// classification, thread references, TLP and the RFC 3834 answer decision.
//
// It is pure: bytes in, a Report out, no I/O and no global mutable state.
// Every walk is bounded by Limits (depth, parts, header bytes, decoded
// bytes); over a limit the report is partial and says so in Warnings, and
// Parse never panics on any input (fuzz targets in fuzz_test.go).
//
// The MIME walk is our own lenient reader rather than a strict one: real
// reports arrive with colon-less header lines, missing closing boundaries,
// broken base64 and undeclared 8-bit text, and the evidence in them must
// still reach the analyst (see docs/dependencies.md for why go-message's
// strict reader is not used for the walk).
package parse
