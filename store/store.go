package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors for callers' branch points.
var (
	ErrNotFound    = errors.New("store: not found")
	ErrUnavailable = errors.New("store: unavailable")
	ErrClosed      = errors.New("store: committer closed")
	// ErrConflict: the change was made meanwhile by someone else (another
	// daemon took the same matches, a notice was already sent).
	ErrConflict = errors.New("store: changed meanwhile")
)

// Options tune a store; zero values mean defaults.
type Options struct {
	// Now is the clock (tests inject one). Default time.Now.
	Now func() time.Time
	// TicketPrefix is the PREFIX of PREFIX#YYYY-NNNNNN. Default "CSIRT".
	TicketPrefix string
}

// Store is what the pipeline, intake, notify, web and the commands ask of
// a store. store/sqlite and store/postgres implement it; the conformance
// suite (conformance_test.go) holds both to the same results.
type Store interface {
	// Spool commits a message and its queue row: the acceptance point,
	// nil means durable. SpoolBatch commits several in one transaction.
	Spool(ctx context.Context, m *Message) (int64, error)
	SpoolBatch(ctx context.Context, ms []*Message) ([]int64, error)
	// Writers is how many spool transactions may usefully run at once
	// (the group committer's loops): 1 where the database has one writer.
	Writers() int
	GetMessage(ctx context.Context, id int64) (*Message, error)

	// Claim leases up to n ready (or lease-expired) queue rows, oldest
	// first; a row past maxAttempts is quarantined as "crashed" instead.
	Claim(ctx context.Context, worker string, n int, lease time.Duration, maxAttempts int) ([]Claim, error)
	// ClaimMessages is Claim and GetMessage for each claimed row (nil
	// where a message cannot be read).
	ClaimMessages(ctx context.Context, worker string, n int, lease time.Duration, maxAttempts int) ([]Claim, []*Message, error)
	// Release hands claimed rows back untouched (the attempt not counted).
	Release(ctx context.Context, worker string, ids []int64) error
	// Fail records a failed attempt: back-off, or quarantine at maxAttempts.
	Fail(ctx context.Context, spoolID int64, reason, detail string, maxAttempts int) (quarantined bool, err error)
	ListQueue(ctx context.Context, state string, limit int) ([]QueueItem, error)
	QueueCounts(ctx context.Context) (map[string]int, error)
	// Requeue makes spooled messages ready (or claimed by worker) again:
	// one id (>0), the quarantined ones, or those received since.
	Requeue(ctx context.Context, id int64, quarantined bool, since time.Time, worker string, lease time.Duration) ([]int64, error)

	// FileBatch files processed spool rows in one transaction, in order,
	// each with the result it would have alone, and marks their queue
	// rows done. See the package comment for its invariants.
	FileBatch(ctx context.Context, fs []*Filing) ([]FileResult, error)
	// File is FileBatch of one.
	File(ctx context.Context, f *Filing) (FileResult, error)
	ImportIncident(ctx context.Context, ticket, subject, requester string, created time.Time) error
	ListIncidents(ctx context.Context, f Filter) ([]Incident, error)
	GetIncident(ctx context.Context, ticket string) (*IncidentDetail, error)
	// UpdateIncident applies a staff change with an event per field, in
	// one durable transaction; resolving queues the resolution notice.
	// ErrNotFound, or ErrConflict when IfUpdated does not hold.
	UpdateIncident(ctx context.Context, ticket string, c Change) error
	// AddNote adds a staff note to the incident's log.
	AddNote(ctx context.Context, ticket, actor, text string) error
	// QueueReply queues staff's answer to the requester (an outbox row
	// threaded with the ticket) and returns its outbox ID.
	QueueReply(ctx context.Context, ticket, actor, text, domain string) (int64, error)
	// Merge moves everything filed on from into into: reports,
	// indicators, events, outbox rows, matches, threads; from's ticket
	// (and its aliases) then thread to into. ErrConflict when they are
	// the same incident.
	Merge(ctx context.Context, from, into, actor string) error

	// SaveCertificate keeps a correspondent's S/MIME certificate (DER)
	// for its address unless the one kept is valid longer; changed tells
	// whether it was stored.
	SaveCertificate(ctx context.Context, email string, der []byte, sha256 string, notAfter time.Time) (changed bool, err error)
	// Certificate is an address's certificate (ErrNotFound: none).
	Certificate(ctx context.Context, email string) ([]byte, error)

	CreateSession(ctx context.Context, s Session) error
	// GetSession is ErrNotFound for an unknown or expired session.
	GetSession(ctx context.Context, id string) (Session, error)
	DeleteSession(ctx context.Context, id string) error
	ReportTicket(ctx context.Context, reportID int64) (json.RawMessage, string, error)
	ReportSpool(ctx context.Context, reportID int64) (int64, error)

	// AddEvent appends one entry to the log of each incident.
	AddEvent(ctx context.Context, incidents []int64, kind, actor, detail string) error

	// PendingConstituents are the constituents with matches that no
	// notice has taken; PendingMatches are up to limit of one
	// constituent's, oldest first.
	PendingConstituents(ctx context.Context) ([]PendingConstituent, error)
	PendingMatches(ctx context.Context, constituent string, limit int) ([]PendingMatch, error)
	// QueueNotice marks the matches decided and queues the notice's rows
	// in one durable transaction, with an event on each incident; it is
	// ErrConflict (and changes nothing) when any match was decided
	// meanwhile. It returns the outbox IDs.
	QueueNotice(ctx context.Context, n Notice) ([]int64, error)
	// ReleaseNotice makes a held notice about the ticket's incident
	// pending: ErrNotFound when there is no such notice, ErrConflict when
	// it is not held (sent, released already).
	ReleaseNotice(ctx context.Context, ticket string, id int64, actor string) error

	ClaimOutbox(ctx context.Context, n int, lease time.Duration) ([]OutboxEntry, error)
	MarkSent(ctx context.Context, id int64) error
	MarkOutboxFailed(ctx context.Context, id int64, detail string, dead bool, backoff time.Duration) error
	PostponeOutbox(ctx context.Context, id int64, detail string, wait time.Duration) error
	MarkOutboxSkippedAll(ctx context.Context, skips []OutboxSkip) error
	// RecentTo counts the acknowledgements and follow-ups sent (or being
	// sent) to r since a time, among outbox rows before the id, up to upTo.
	RecentTo(ctx context.Context, r Recipients, since time.Time, before int64, upTo int) (int, error)
	OutboxCounts(ctx context.Context) (map[string]int, error)

	GetIMAPState(ctx context.Context, key string) (IMAPState, error)
	SetIMAPState(ctx context.Context, key string, st IMAPState) error
	SpoolIMAP(ctx context.Context, m *Message, key string, st IMAPState, uid uint32) (int64, error)
	HoldIMAPOversize(ctx context.Context, notice *Message, key string, st IMAPState, uid uint32, size int64) (int64, error)
	IMAPOversize(ctx context.Context, key string, uidValidity uint32) (map[uint32]bool, error)
	// LockMailbox takes the right to poll a mailbox, without waiting; ok
	// is false when another poller (of any daemon sharing the store) has it.
	LockMailbox(ctx context.Context, key string) (release func(), ok bool, err error)

	GetOAuth2Token(ctx context.Context, account string) (OAuth2Token, error)
	SetOAuth2Token(ctx context.Context, account string, t OAuth2Token) error

	Ping(ctx context.Context) error
	// ServerWarnings names the database server's settings that work
	// against the daemon, for it to log at start (none for SQLite).
	ServerWarnings(ctx context.Context) ([]string, error)
	// SchemaVersion is the highest applied migration, LatestMigration the
	// one this build expects.
	SchemaVersion(ctx context.Context) (int, error)
	LatestMigration() int
	Close() error
}
