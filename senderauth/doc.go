// Package senderauth knows who really sent a message: it verifies its DKIM
// signatures (RSA and Ed25519, with emersion/go-msgauth), checks SPF for
// the client IP and envelope sender the SMTP listener recorded
// (blitiri.com.ar/go/spf), and evaluates DMARC alignment of both with the
// From domain (go-msgauth/dmarc). For mail another MTA received (LMTP,
// IMAP, import) SPF and DMARC come from the Authentication-Results header
// of a trusted authserv-id; DKIM is verified here all the same.
//
// DNS goes through one resolver (the system's or auth.dns_resolver) with a
// timeout and a small cache; a DNS failure gives temperror, never a stuck
// message. The checks run in the pipeline, after the 250: a message is
// accepted whatever its authentication, which only decides what it may
// do (join a ticket as its requester, be a partner, be answered).
package senderauth
