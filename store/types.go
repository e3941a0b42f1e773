package store

import (
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/internal/vocab"
)

// Channels a message can arrive on.
const (
	ChannelSMTP   = "smtp"
	ChannelLMTP   = "lmtp"
	ChannelIMAP   = "imap"
	ChannelImport = "import"
	// ChannelSubmission is the staff submission listener: the sender
	// authenticated (SMTP AUTH) before the message was accepted, so it
	// may speak as the team.
	ChannelSubmission = "submission"
)

// Queue states.
const (
	StateReady       = "ready"
	StateClaimed     = "claimed"
	StateDone        = "done"
	StateQuarantined = "quarantined"
)

// Message is a spooled message, byte for byte as received.
type Message struct {
	ID         int64
	SHA256     string
	Channel    string
	MailFrom   string
	RcptTo     []string
	Peer       string
	ReceivedAt time.Time
	Size       int64
	Raw        []byte
	// Source, when Raw is nil, supplies a large message (a temporary file):
	// it is read in chunks of ChunkSize inside the spool transaction, from
	// its start each time it is spooled, so it is never held whole.
	Source io.ReadSeeker
	// ClaimedBy, when set, spools the message already claimed by that
	// worker for Lease, so that no other worker (a daemon sharing the
	// store) takes it: madoguchi import files exactly what it read, with
	// its own options. Should the claimer die, the lease runs out and any
	// worker files it.
	ClaimedBy string
	Lease     time.Duration
}

// ChunkSize is the size of one spool chunk: a message larger than this is
// spooled from its Source in chunks of this size.
const ChunkSize = 1 << 20

// Claim is a leased queue row.
type Claim struct {
	SpoolID  int64
	Attempts int // including this one
}

// QueueItem is a queue row for listings.
type QueueItem struct {
	SpoolID    int64     `json:"spool_id"`
	State      string    `json:"state"`
	Attempts   int       `json:"attempts"`
	Reason     string    `json:"reason,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	Channel    string    `json:"channel"`
	Size       int64     `json:"size"`
}

// Outcomes of File.
const (
	OutcomeNew         = "new"
	OutcomeAttached    = "attached"
	OutcomeDuplicate   = "duplicate"
	OutcomeReprocessed = "reprocessed"
	// OutcomeNoted: an AttachOnly filing that joined no incident. No
	// report or incident is made; the raw message stays in the spool and
	// the ticket it named (if any) gets an event saying so.
	OutcomeNoted = "noted"
)

// Indicator is one indicator of a report.
type Indicator struct {
	Kind  vocab.IndicatorKind `json:"kind"`
	Value string              `json:"value"`
}

// Match is an indicator of a report that belongs to a constituent.
type Match struct {
	Constituent string              `json:"constituent"`
	Kind        vocab.IndicatorKind `json:"kind"`
	Value       string              `json:"value"`
}

// ConstituentHits are the indicators of an incident that belong to one
// constituent.
type ConstituentHits struct {
	ID         string      `json:"id"`
	Indicators []Indicator `json:"indicators"`
}

// Filing is what the pipeline asks the store to file for one spool row.
type Filing struct {
	SpoolID    int64
	MessageID  string // "" when the message has none
	Sender     string // From address, lower-case
	Subject    string
	Ticket     string   // our ticket tag from the subject, "" if none
	References []string // In-Reply-To and References
	// Trusted: the message carries a good signature by a known key whose
	// user ID matches the sender, or comes from the team itself. With a
	// ticket tag alone a stranger cannot inject into a ticket.
	Trusted bool
	// SenderForged: the From domain fails DMARC (and no signature bound
	// to From vouches for it): the sender is not who From says, so it
	// cannot add to a ticket as its requester, a past reporter or a
	// constituent; a ticket tag makes it the stranger's mail it is.
	SenderForged bool
	// AttachOnly: the message is not a report of its own (a bounce of our
	// mail, a message in the team's name that is not authenticated as the
	// team's): it joins the incident it threads to, and when it threads to
	// none it is noted, never filed as a new incident.
	AttachOnly bool
	Taxonomy   string
	Type       string
	TLP        string
	ReportJSON []byte
	Indicators []Indicator
	// SenderConstituent is the constituent the sender writes for (one of
	// its contacts, or an address under its domains), "" if none: it may
	// add to an incident about that constituent by the ticket tag, as the
	// requester may (a reply to our notice).
	SenderConstituent string
	// Matches are the indicators that belong to a constituent: recorded
	// on the report's incident, and put into notices by the noticer.
	Matches []Match
	// Ack, when not nil, asks for an acknowledgement row if (and only if)
	// this filing opens a new incident.
	Ack *AckRequest
	// Alert, when not nil, asks for staff alert rows if this filing opens
	// a new incident.
	Alert *AlertRequest
}

// AckRequest describes the acknowledgement to queue.
type AckRequest struct {
	Recipient string
	Domain    string // right-hand side of our Message-ID
	// FollowUp also queues a short "added to TICKET" note when the message
	// joins an open incident (notify.followup: note).
	FollowUp bool
}

// AlertRequest asks for staff alerts when the filing opens an incident:
// a message to the duty address and/or a webhook call.
type AlertRequest struct {
	DutyAddress string
	WebhookURL  string
	Domain      string // right-hand side of the alert Message-IDs
}

// FileResult says what File did.
type FileResult struct {
	Outcome    string
	Ticket     string
	IncidentID int64
	ReportID   int64
	AckID      int64 // outbox row, 0 if none
	Note       string
}

// DedupKey is the de-duplication key of a message.
func DedupKey(messageID, sha256hex string) string {
	if messageID != "" {
		return "mid:" + strings.ToLower(messageID)
	}
	return "sha256:" + sha256hex
}

// Incident is an incident for listings and the staff API.
type Incident struct {
	ID        int64        `json:"-"`
	Ticket    string       `json:"ticket"`
	Status    vocab.Status `json:"status"`
	Taxonomy  string       `json:"taxonomy"`
	Type      string       `json:"type"`
	Subject   string       `json:"subject"`
	Requester string       `json:"requester"`
	Assignee  string       `json:"assignee,omitempty"`
	TLP       string       `json:"tlp,omitempty"`
	// Priority is P1-P4 once staff triaged it ("" before).
	Priority vocab.Priority `json:"priority,omitempty"`
	// Resolution is what staff wrote when resolving it.
	Resolution string `json:"resolution,omitempty"`
	// Aliases are the tickets of incidents merged into this one: they
	// thread here.
	Aliases   []string  `json:"aliases,omitempty"`
	Reports   int       `json:"reports"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Constituents are the constituents the incident's reports concern,
	// each with the indicators that matched, by ID.
	Constituents []ConstituentHits `json:"constituents"`
}

// Filter selects incidents; zero fields select everything.
type Filter struct {
	Ticket    string
	Indicator string
	Taxonomy  string
	Type      string
	Status    string
	// Constituent selects incidents about one constituent (by ID).
	Constituent string
	TLP         string
	Assignee    string
	Priority    string
	// Text matches the ticket, subject or requester (a substring, case
	// as stored).
	Text string
	// DMARC selects incidents with a report whose sender authentication
	// gave this DMARC result (pass, fail, none, temperror).
	DMARC  string
	Since  time.Time
	Until  time.Time
	Limit  int
	Offset int
}

// Report is a filed report.
type Report struct {
	ID         int64           `json:"id"`
	SpoolID    int64           `json:"spool_id"`
	MessageID  string          `json:"message_id"`
	Sender     string          `json:"sender"`
	CreatedAt  time.Time       `json:"created_at"`
	Report     json.RawMessage `json:"report"`
	Indicators []Indicator     `json:"indicators"`
}

// Event is one entry of an incident's log.
type Event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Actor  string    `json:"actor,omitempty"`
	Detail string    `json:"detail"`
}

// IncidentDetail is one incident with everything filed on it.
type IncidentDetail struct {
	Incident
	ReportList []Report      `json:"report_list"`
	Events     []Event       `json:"events"`
	Outbox     []OutboxEntry `json:"outbox"`
}

// Outbox states.
const (
	OutboxPending = "pending"
	OutboxSending = "sending"
	OutboxSent    = "sent"
	OutboxDead    = "dead"
	// OutboxSkipped: not sent on purpose (a rate limit), with the reason.
	OutboxSkipped = "skipped"
	// OutboxHeld: a notice waiting for staff to send it (ReleaseNotice).
	OutboxHeld = "held"
)

// Outbox row kinds.
const (
	OutboxAck      = "ack"      // acknowledgement of a new report
	OutboxFollowUp = "followup" // "added to TICKET" note for a follow-up
	OutboxAlert    = "alert"    // staff alert mail to the duty address
	OutboxWebhook  = "webhook"  // staff alert as an HMAC-signed JSON POST
	OutboxNotice   = "notice"   // notice to a constituent's contact
	OutboxReply    = "reply"    // staff's answer to the requester
	OutboxResolved = "resolved" // resolution notice to the requester
)

// Change is a staff change of an incident; zero fields change nothing.
type Change struct {
	Status     vocab.Status
	Assignee   *string
	Priority   vocab.Priority
	Resolution *string
	Actor      string
	// IfUpdated, when not zero, makes the change ErrConflict unless the
	// incident was last updated exactly then (what the staff member saw).
	IfUpdated time.Time
	// Domain is the right-hand side of the resolution notice's
	// Message-ID, queued when the status becomes resolved and the
	// requester was acknowledged.
	Domain string
}

// Session is a staff member signed in from a browser.
type Session struct {
	ID        string // SHA-256 (hex) of the cookie's value
	Actor     string
	TokenLine string // the tokens file line it signed in with
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ReplyPayload is what a reply or resolution notice says besides the
// report it answers.
type ReplyPayload struct {
	Text  string `json:"text"`
	Actor string `json:"actor,omitempty"`
}

// OutboxEntry is one outbound message.
type OutboxEntry struct {
	ID         int64     `json:"id"`
	IncidentID int64     `json:"-"`
	ReportID   int64     `json:"report_id"`
	Kind       string    `json:"kind"`
	Recipient  string    `json:"recipient"`
	MessageID  string    `json:"message_id"`
	State      string    `json:"state"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	// Payload is what the row's renderer needs beyond the report (a
	// notice's NoticePayload, as JSON).
	Payload string `json:"-"`
}

// OutboxSkip is a row not sent on purpose, and why.
type OutboxSkip struct {
	ID     int64
	Reason string
}

// Recipients selects acknowledgements and follow-up notes by recipient
// for the hourly budgets: one address (Exact), addresses matching SQL
// LIKE patterns (Like: its sub-addresses, a domain), or every one (All).
type Recipients struct {
	Exact string
	Like  []string
	All   bool
}

// LikeEscape escapes s for a LIKE pattern with ESCAPE '\'.
func LikeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// IMAPState is what a poller remembers of one mailbox: the UIDVALIDITY it
// saw and the highest UID it has spooled under it.
type IMAPState struct {
	UIDValidity uint32
	LastUID     uint32
}

// OAuth2Token is an account's refresh token as the store keeps it.
type OAuth2Token struct {
	RefreshToken string
	SeedSHA256   string // of the refresh_token_file it was seeded from
}

// PendingConstituent is a constituent with matches no notice has taken
// yet: how many, and when the oldest was filed.
type PendingConstituent struct {
	Constituent string
	Count       int
	Oldest      time.Time
}

// PendingMatch is a match waiting for a notice, with what a notice says
// of its report.
type PendingMatch struct {
	ID, ReportID, IncidentID int64
	Ticket                   string
	Taxonomy, Type           string
	Requester                string
	TLP                      string
	Match
	CreatedAt time.Time
}

// Notice asks QueueNotice to put matches into notices: an outbox row per
// recipient (none: the matches are only marked as decided, with Note as
// the event), each with an unguessable Message-ID in Domain that threads
// replies to the first match's incident.
type Notice struct {
	MatchIDs []int64
	Rows     []NoticeRow
	Domain   string
	// Note is the event text on each incident of the matches, after
	// "notice N to RECIPIENT: " for each row.
	Note string
}

// NoticeRow is one recipient of a notice.
type NoticeRow struct {
	Recipient string
	Held      bool   // state held: staff send it (ReleaseNotice)
	Payload   string // NoticePayload as JSON
}

// NoticePayload is what a notice says, kept with its outbox row.
type NoticePayload struct {
	Constituent string       `json:"constituent"`
	Name        string       `json:"name"`
	Language    string       `json:"language"`
	TLP         string       `json:"tlp"`
	Held        string       `json:"held,omitempty"` // why it waits for staff
	Tickets     []string     `json:"tickets"`
	Incidents   []int64      `json:"incidents"`
	Items       []NoticeItem `json:"items"`
}

// NoticeItem is one indicator a notice names, with its report.
type NoticeItem struct {
	Ticket     string              `json:"ticket"`
	ReportID   int64               `json:"report_id"`
	Taxonomy   string              `json:"taxonomy,omitempty"`
	Type       string              `json:"type,omitempty"`
	TLP        string              `json:"tlp,omitempty"`
	Kind       vocab.IndicatorKind `json:"kind"`
	Value      string              `json:"value"`
	ReportedAt time.Time           `json:"reported_at"`
	// Reporter is the reporter's address, kept only where the report is
	// TLP:CLEAR or TLP:GREEN (a template may name it then).
	Reporter string `json:"reporter,omitempty"`
}
