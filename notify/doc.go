// Package notify delivers the outbox: acknowledgements rendered from the
// filed report (English or Japanese by the report's language) with the
// ticket in the subject, In-Reply-To/References and Auto-Submitted:
// auto-replied, signed with the team key (and encrypted to the reporter's
// key when the report came encrypted), and staff alerts by mail or HMAC
// webhook. A row goes through an SMTP relay (Relay) or, with no relay, as
// an .eml file into notify.outbox_dir (FileDelivery).
//
// A row is claimed with a lease, delivered, then marked sent. A crash
// between the relay's 250 and the mark sends it once more with the same
// Message-ID after the lease; into the directory it rewrites the same file
// name (written to a temporary file, fsynced and renamed): never two files.
// The hourly limit per address skips the rows beyond it, the earliest going
// out.
package notify
