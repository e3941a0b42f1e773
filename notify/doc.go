// Package notify delivers the outbox: acknowledgements rendered from the
// filed report (English or Japanese by the report's language) with the
// ticket in the subject, In-Reply-To/References and Auto-Submitted:
// auto-replied. Today it writes each message as an .eml file into
// notify.outbox_dir (the interface's default with no relay); relaying by SMTP,
// signing and encryption are the notify issue's remaining work.
//
// A row is claimed with a lease, written to a temporary file, fsynced and
// renamed into place under its Message-ID, then marked sent. A crash between
// the rename and the mark rewrites the same file name: never two files.
package notify
