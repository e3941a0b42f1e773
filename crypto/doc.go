// Package crypto unwraps and produces OpenPGP mail with
// github.com/ProtonMail/go-crypto.
//
// Unwrap takes a received message and the team's keys and returns the
// cleartext MIME message plus verdicts: decryption none | ok |
// cannot-decrypt | refused, signature none | good | bad | unknown-key |
// expired | revoked. It handles PGP/MIME encrypted and signed (RFC 3156),
// signed-then-encrypted, inline PGP messages and cleartext signatures, and
// RFC 9788 protected headers.
//
// It is pure: bytes and keys in, cleartext and verdicts out; no I/O, no
// global state. Keys are parsed once (LoadKeys) and shared read-only.
//
// Limits: decompressed output is capped at min(Limits.MaxDecompressed,
// max(4 MiB, 16 × the message size)); past the cap reading stops at once and
// the verdict is "refused", so a compression bomb costs a few MB and
// milliseconds, never its claimed size. Cleartext is never returned from a
// message whose integrity check (MDC/AEAD) failed.
package crypto
