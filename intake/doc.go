// Package intake takes mail in: the SMTP listener (and, later, LMTP and
// IMAP pollers). Its one rule: a message is acknowledged to its sender (250)
// only after store.Spool has committed it. Every failure is answered with an
// explicit SMTP status: transient faults are 451 4.3.0 (go-smtp would turn a
// plain error into a permanent 554 and bounce a report), and clients see a
// generic text with a reference while the log keeps the cause.
package intake
