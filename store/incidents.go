package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Incident states.
const (
	StatusNew      = "new"
	StatusOpen     = "open"
	StatusResolved = "resolved"
)

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
	Kind  string `json:"kind"`
	Value string `json:"value"`
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

// File files one processed spool row and marks its queue row done, in one
// transaction. See the package comment for its invariants.
func (s *Store) File(ctx context.Context, f *Filing) (FileResult, error) {
	res, err := s.FileBatch(ctx, []*Filing{f})
	if err != nil {
		return FileResult{}, err
	}
	return res[0], nil
}

// FileBatch files several processed spool rows in one transaction, in
// order, with exactly the result each would have alone (a later filing
// sees what the earlier ones filed): one commit, and one wait for the
// year's ticket counter, for the whole batch. On error nothing is filed;
// the caller can file the rows one by one to find the bad one.
//
// The commit does not wait for the disk (see lazyTx): a filing is derived
// from the spool and is done again from the queue, in the same transaction
// as the queue row it finishes, if a power loss takes it. No reporter
// learns of a ticket before it is durable: the acknowledgement that carries
// it is taken from the outbox by ClaimOutbox, whose durable commit flushes
// every commit before it. (Staff reading the store may see a filing a
// moment before it is on disk.)
func (s *Store) FileBatch(ctx context.Context, fs []*Filing) ([]FileResult, error) {
	if s.driver == Postgres {
		return s.fileBatchPostgres(ctx, fs)
	}
	out := make([]FileResult, len(fs))
	err := s.lazyTx(ctx, func(tx *sql.Tx) error {
		for i, f := range fs {
			res, err := s.file(ctx, tx, f)
			if err != nil {
				return err
			}
			out[i] = res
		}
		created, tickets, err := s.numberIncidents(ctx, tx, out)
		if err != nil {
			return err
		}
		for i, id := range created {
			if _, err := s.exec(ctx, tx, `UPDATE incidents SET ticket = ? WHERE id = ?`, tickets[i], id); err != nil {
				return err
			}
		}
		for i, f := range fs {
			res := &out[i]
			for _, o := range outbound(f, res, i) {
				var id int64
				now := micros(s.now())
				if err := s.queryRow(ctx, tx, `INSERT INTO outbox (incident_id, report_id, kind, recipient, message_id, payload, state, not_before, created_at, updated_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
					o.incidentID, o.reportID, o.kind, o.recipient, o.messageID, o.payload, OutboxPending, now, now, now).Scan(&id); err != nil {
					return err
				}
				// Replies to what we send thread to the ticket.
				if err := s.threadID(ctx, tx, o.messageID, o.incidentID); err != nil {
					return err
				}
				if o.answersReporter() {
					res.AckID = id
				}
			}
		}
		return s.finishQueue(ctx, tx, fs, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// finishQueue marks the filings' queue rows done with their outcomes (on
// SQLite; PostgreSQL does it in finishBatchPostgres).
func (s *Store) finishQueue(ctx context.Context, tx *sql.Tx, fs []*Filing, out []FileResult) error {
	now := micros(s.now())
	for i, f := range fs {
		if _, err := s.exec(ctx, tx, `UPDATE queue SET state = ?, outcome = ?, reason = '', last_error = '', lease_until = 0, updated_at = ? WHERE spool_id = ?`,
			StateDone, out[i].Outcome, now, f.SpoolID); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) file(ctx context.Context, tx *sql.Tx, f *Filing) (FileResult, error) {
	now := s.now()
	var res FileResult
	// The spool row, the report it was filed as before if it was, and a
	// filed report it duplicates: one statement (a round trip each on
	// PostgreSQL). Without a Message-ID the de-duplication key is the raw
	// SHA-256, which the statement reads from the spool row (DedupKey).
	midKey := ""
	if f.MessageID != "" {
		midKey = DedupKey(f.MessageID, "")
	}
	var sha string
	var prevReport, prevIncident, dupReport, dupIncident sql.NullInt64
	if err := s.queryRow(ctx, tx, `SELECT s.sha256, r.id, r.incident_id, d.id, d.incident_id FROM spool s
		LEFT JOIN reports r ON r.spool_id = s.id
		LEFT JOIN reports d ON d.dedup_key = COALESCE(NULLIF(?, ''), 'sha256:' || s.sha256)
		WHERE s.id = ?`,
		midKey, f.SpoolID).Scan(&sha, &prevReport, &prevIncident, &dupReport, &dupIncident); err != nil {
		return res, fmt.Errorf("spool %d: %w", f.SpoolID, err)
	}
	// 1. This spool row was filed before (crash re-run or reprocess).
	var reportID, incidentID int64
	if prevReport.Valid {
		reportID, incidentID = prevReport.Int64, prevIncident.Int64
		if _, err := s.exec(ctx, tx, `UPDATE reports SET report_json = ?, updated_at = ? WHERE id = ?`, string(f.ReportJSON), micros(now), reportID); err != nil {
			return res, err
		}
		if _, err := s.exec(ctx, tx, `DELETE FROM indicators WHERE report_id = ?`, reportID); err != nil {
			return res, err
		}
		if err := s.insertIndicators(ctx, tx, reportID, incidentID, f.Indicators); err != nil {
			return res, err
		}
		if err := s.event(ctx, tx, incidentID, "reprocessed", fmt.Sprintf("report %d re-derived from spool %d", reportID, f.SpoolID)); err != nil {
			return res, err
		}
		res = FileResult{Outcome: OutcomeReprocessed, IncidentID: incidentID, ReportID: reportID}
		var err error
		res.Ticket, err = s.ticketOf(ctx, tx, incidentID)
		return res, err
	}
	// 2. Duplicate of a filed message.
	key := DedupKey(f.MessageID, sha)
	if dupReport.Valid {
		reportID, incidentID = dupReport.Int64, dupIncident.Int64
		if err := s.event(ctx, tx, incidentID, "duplicate", fmt.Sprintf("spool %d repeats report %d (%s)", f.SpoolID, reportID, key)); err != nil {
			return res, err
		}
		res = FileResult{Outcome: OutcomeDuplicate, IncidentID: incidentID, ReportID: reportID}
		var err error
		res.Ticket, err = s.ticketOf(ctx, tx, incidentID)
		return res, err
	}
	// 3. Thread: ticket tag (with trust), then References.
	incidentID, note, err := s.thread(ctx, tx, f)
	if err != nil {
		return res, err
	}
	if incidentID == 0 && f.AttachOnly {
		return FileResult{Outcome: OutcomeNoted, Note: note}, nil
	}
	outcome := OutcomeAttached
	if incidentID == 0 && s.driver == Postgres {
		out := make([]FileResult, 1)
		err := s.fileNewPostgres(ctx, tx, []*Filing{f}, []int{0}, []string{key}, []string{note}, out)
		return out[0], err
	}
	if incidentID == 0 {
		outcome = OutcomeNew
		if incidentID, res.Ticket, err = s.newIncident(ctx, tx, f, now); err != nil {
			return res, err
		}
	} else if res.Ticket, err = s.ticketOf(ctx, tx, incidentID); err != nil {
		return res, err
	}
	err = s.queryRow(ctx, tx, `INSERT INTO reports (spool_id, incident_id, message_id, dedup_key, sender, report_json, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		f.SpoolID, incidentID, f.MessageID, key, f.Sender, string(f.ReportJSON), micros(now), micros(now)).Scan(&reportID)
	if err != nil {
		return res, err
	}
	if err := s.insertIndicators(ctx, tx, reportID, incidentID, f.Indicators); err != nil {
		return res, err
	}
	if f.MessageID != "" {
		if err := s.threadID(ctx, tx, f.MessageID, incidentID); err != nil {
			return res, err
		}
	}
	detail := fmt.Sprintf("report %d from %s", reportID, f.Sender)
	if note != "" {
		detail += "; " + note
	}
	kind := "report-attached"
	if outcome == OutcomeNew {
		kind = "created"
	} else if _, err := s.exec(ctx, tx, `UPDATE incidents SET updated_at = ? WHERE id = ?`, micros(now), incidentID); err != nil {
		return res, err
	}
	if err := s.event(ctx, tx, incidentID, kind, detail); err != nil {
		return res, err
	}
	res.Outcome, res.IncidentID, res.ReportID, res.Note = outcome, incidentID, reportID, note
	return res, nil
}

// outboundRow is one row a filing queues in the outbox.
type outboundRow struct {
	filing               int // index in the batch
	incidentID, reportID int64
	kind, recipient      string
	messageID, payload   string
}

// answersReporter: the row is the reporter's acknowledgement or follow-up,
// whose outbox ID is the filing's AckID.
func (o outboundRow) answersReporter() bool {
	return o.kind == OutboxAck || o.kind == OutboxFollowUp
}

// outbound is what a filing sends (acknowledgement or follow-up, alerts),
// once res.Ticket is final: the Message-IDs name the ticket.
func outbound(f *Filing, res *FileResult, i int) []outboundRow {
	if res.Outcome != OutcomeNew && res.Outcome != OutcomeAttached {
		return nil
	}
	var rows []outboundRow
	add := func(kind, recipient, domain string) {
		payload, _ := json.Marshal(map[string]any{"report_id": res.ReportID})
		rows = append(rows, outboundRow{filing: i, incidentID: res.IncidentID, reportID: res.ReportID, kind: kind, recipient: recipient,
			messageID: fmt.Sprintf("<%s.%s.%d.%s@%s>", ticketSlug(res.Ticket), kind, res.ReportID, unguessable(), domain), payload: string(payload)})
	}
	if f.Ack != nil && f.Ack.Recipient != "" {
		switch {
		case res.Outcome == OutcomeNew:
			add(OutboxAck, f.Ack.Recipient, f.Ack.Domain)
		case f.Ack.FollowUp:
			add(OutboxFollowUp, f.Ack.Recipient, f.Ack.Domain)
		}
	}
	if a := f.Alert; a != nil && res.Outcome == OutcomeNew {
		if a.DutyAddress != "" {
			add(OutboxAlert, a.DutyAddress, a.Domain)
		}
		if a.WebhookURL != "" {
			add(OutboxWebhook, a.WebhookURL, a.Domain)
		}
	}
	return rows
}

// unguessable is the random part of our Message-IDs. A reply naming one
// in References joins the incident without a ticket tag, so nobody who
// has not seen our message may be able to write it down: a Message-ID
// made only of the ticket and a counter let any stranger join any
// incident.
func unguessable() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ticketSlug turns CSIRT#2026-000123 into csirt-2026-000123 for Message-IDs.
func ticketSlug(t string) string {
	return strings.ToLower(strings.NewReplacer("#", "-", " ", "").Replace(t))
}

func (s *Store) thread(ctx context.Context, tx *sql.Tx, f *Filing) (int64, string, error) {
	var byRef int64
	for _, ref := range f.References {
		var id int64
		err := s.queryRow(ctx, tx, `SELECT incident_id FROM thread_ids WHERE message_id = ?`, strings.ToLower(ref)).Scan(&id)
		if err == nil {
			byRef = id
			break
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, "", err
		}
	}
	if f.Ticket != "" {
		var id int64
		var requester string
		err := s.queryRow(ctx, tx, `SELECT id, requester FROM incidents WHERE ticket = ?`, f.Ticket).Scan(&id, &requester)
		if err == nil {
			if f.Trusted || byRef == id || strings.EqualFold(requester, f.Sender) {
				return id, "threaded by ticket tag", nil
			}
			var n int
			if err := s.queryRow(ctx, tx, `SELECT COUNT(*) FROM reports WHERE incident_id = ? AND sender = ?`, id, f.Sender).Scan(&n); err != nil {
				return 0, "", err
			}
			if n > 0 {
				return id, "threaded by ticket tag", nil
			}
			// A stranger quoting a ticket tag: file separately, tell the
			// tagged incident so an analyst can merge by hand.
			what := "filed separately"
			if f.AttachOnly {
				what = fmt.Sprintf("not attached; kept as spool %d", f.SpoolID)
			}
			if err := s.event(ctx, tx, id, "tag-from-stranger", fmt.Sprintf("%s used the ticket tag without references or signature; %s", f.Sender, what)); err != nil {
				return 0, "", err
			}
			return 0, "carried ticket tag " + f.Ticket + " from a sender not on that ticket", nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return 0, "", err
		}
	}
	if byRef != 0 {
		return byRef, "threaded by References", nil
	}
	return 0, "", nil
}

// provisionalTicket is a new incident's ticket until nextTickets
// numbers it: unique by its spool row.
func provisionalTicket(spoolID int64) string { return fmt.Sprintf("pending:%d", spoolID) }

// newIncident inserts the incident under a provisional ticket, unique by
// its spool row; it gets its number (nextTickets) before the commit.
func (s *Store) newIncident(ctx context.Context, tx *sql.Tx, f *Filing, now time.Time) (int64, string, error) {
	provisional := provisionalTicket(f.SpoolID)
	var id int64
	err := s.queryRow(ctx, tx, `INSERT INTO incidents (ticket, status, taxonomy, type, subject, requester, tlp, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		provisional, StatusNew, f.Taxonomy, f.Type, truncate(f.Subject, 1000), f.Sender, f.TLP, micros(now), micros(now)).Scan(&id)
	return id, provisional, err
}

// numberIncidents takes the batch's ticket numbers for the incidents it
// opened, in filing order, and gives each result its incident's final
// ticket: a new one, or one attached to an incident opened earlier in the
// batch. It is done once for the whole batch, after every filing in it:
// the year's counter row stays locked from here to the commit, so
// concurrent filings (other workers, other daemons) wait on it for the
// last few statements, not for the batch. The caller writes the tickets
// to the incidents.
func (s *Store) numberIncidents(ctx context.Context, tx *sql.Tx, out []FileResult) ([]int64, []string, error) {
	var created []int64
	for _, r := range out {
		if r.Outcome == OutcomeNew {
			created = append(created, r.IncidentID)
		}
	}
	tickets, err := s.nextTickets(ctx, tx, len(created), s.now())
	if err != nil {
		return nil, nil, err
	}
	ticketOf := make(map[int64]string, len(created))
	for i, id := range created {
		ticketOf[id] = tickets[i]
	}
	for i := range out {
		if t, ok := ticketOf[out[i].IncidentID]; ok {
			out[i].Ticket = t
		}
	}
	return created, tickets, nil
}

// nextTickets takes the year's next n numbers (PREFIX#YYYY-NNNNNN), in
// order, with one update of the counter: sequential per year and unique
// across daemons, since the counter row is locked until this transaction
// commits. The caller gives them to the new incidents.
func (s *Store) nextTickets(ctx context.Context, tx *sql.Tx, n int, now time.Time) ([]string, error) {
	if n == 0 {
		return nil, nil
	}
	year := now.UTC().Year()
	var last int
	if err := s.queryRow(ctx, tx, nextTicketsSQL, year, n).Scan(&last); err != nil {
		return nil, err
	}
	return s.ticketNames(year, last, n), nil
}

// nextTicketsSQL raises the year's counter by n and returns it.
const nextTicketsSQL = `INSERT INTO ticket_counters (year, last) VALUES (?, ?)
	ON CONFLICT (year) DO UPDATE SET last = ticket_counters.last + excluded.last RETURNING last`

// ticketNames are the n tickets of year up to last.
func (s *Store) ticketNames(year, last, n int) []string {
	tickets := make([]string, n)
	for i := range tickets {
		tickets[i] = fmt.Sprintf("%s#%d-%06d", s.prefix, year, last-n+1+i)
	}
	return tickets
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// insertIndicators writes a report's indicators in multi-row INSERTs of up
// to 200 rows: one statement per indicator cost a network round trip each
// on PostgreSQL, and a report with a few hundred IPs took 100 ms to file.
//
// On SQLite there is no round trip to save, and one prepared single-row
// INSERT, compiled once, costs less than compiling a new multi-row
// statement for each report.
func (s *Store) insertIndicators(ctx context.Context, tx *sql.Tx, reportID, incidentID int64, inds []Indicator) error {
	if s.driver != Postgres {
		for _, in := range inds {
			if _, err := s.exec(ctx, tx, `INSERT INTO indicators (report_id, incident_id, kind, value) VALUES (?, ?, ?, ?)`,
				reportID, incidentID, in.Kind, in.Value); err != nil {
				return err
			}
		}
		return nil
	}
	const chunk = 200
	for len(inds) > 0 {
		n := min(len(inds), chunk)
		var q strings.Builder
		q.WriteString(`INSERT INTO indicators (report_id, incident_id, kind, value) VALUES `)
		args := make([]any, 0, 4*n)
		for i, in := range inds[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?)")
			args = append(args, reportID, incidentID, in.Kind, in.Value)
		}
		if _, err := tx.ExecContext(ctx, s.q(q.String()), args...); err != nil {
			return err
		}
		inds = inds[n:]
	}
	return nil
}

func (s *Store) threadID(ctx context.Context, tx *sql.Tx, mid string, incidentID int64) error {
	_, err := s.exec(ctx, tx, `INSERT INTO thread_ids (message_id, incident_id) VALUES (?, ?) ON CONFLICT (message_id) DO NOTHING`,
		strings.ToLower(mid), incidentID)
	return err
}

func (s *Store) event(ctx context.Context, tx *sql.Tx, incidentID int64, kind, detail string) error {
	_, err := s.exec(ctx, tx, `INSERT INTO events (incident_id, at, kind, detail) VALUES (?, ?, ?, ?)`,
		incidentID, micros(s.now()), kind, detail)
	return err
}

func (s *Store) ticketOf(ctx context.Context, tx *sql.Tx, incidentID int64) (string, error) {
	var t string
	err := s.queryRow(ctx, tx, `SELECT ticket FROM incidents WHERE id = ?`, incidentID).Scan(&t)
	return t, err
}

// ImportIncident creates an incident with a given ticket (migration from an
// earlier tracker, tests). The year's counter is raised past its number so
// new tickets never collide with it.
func (s *Store) ImportIncident(ctx context.Context, ticket, subject, requester string, created time.Time) error {
	var year, seq int
	i := strings.LastIndex(ticket, "#")
	if i < 0 {
		return fmt.Errorf("store: bad ticket %q", ticket)
	}
	if _, err := fmt.Sscanf(ticket[i+1:], "%d-%d", &year, &seq); err != nil {
		return fmt.Errorf("store: bad ticket %q", ticket)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `INSERT INTO ticket_counters (year, last) VALUES (?, 0) ON CONFLICT (year) DO NOTHING`, year); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `UPDATE ticket_counters SET last = ? WHERE year = ? AND last < ?`, seq, year, seq); err != nil {
			return err
		}
		var id int64
		if err := s.queryRow(ctx, tx, `INSERT INTO incidents (ticket, status, subject, requester, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			ticket, StatusOpen, subject, strings.ToLower(requester), micros(created), micros(created)).Scan(&id); err != nil {
			return err
		}
		return s.event(ctx, tx, id, "imported", "incident imported with its ticket")
	})
}

// Incident is an incident for listings and the staff API.
type Incident struct {
	ID        int64     `json:"-"`
	Ticket    string    `json:"ticket"`
	Status    string    `json:"status"`
	Taxonomy  string    `json:"taxonomy"`
	Type      string    `json:"type"`
	Subject   string    `json:"subject"`
	Requester string    `json:"requester"`
	Assignee  string    `json:"assignee,omitempty"`
	TLP       string    `json:"tlp,omitempty"`
	Reports   int       `json:"reports"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Filter selects incidents; zero fields select everything.
type Filter struct {
	Ticket    string
	Indicator string
	Taxonomy  string
	Type      string
	Status    string
	Since     time.Time
	Until     time.Time
	Limit     int
	Offset    int
}

// ListIncidents lists incidents newest first.
func (s *Store) ListIncidents(ctx context.Context, f Filter) ([]Incident, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.Ticket != "" {
		add("i.ticket = ?", f.Ticket)
	}
	if f.Indicator != "" {
		add("i.id IN (SELECT incident_id FROM indicators WHERE value = ?)", strings.ToLower(f.Indicator))
	}
	if f.Taxonomy != "" {
		add("i.taxonomy = ?", f.Taxonomy)
	}
	if f.Type != "" {
		add("i.type = ?", f.Type)
	}
	if f.Status != "" {
		add("i.status = ?", f.Status)
	}
	if !f.Since.IsZero() {
		add("i.created_at >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		add("i.created_at < ?", micros(f.Until))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT i.id, i.ticket, i.status, i.taxonomy, i.type, i.subject, i.requester, i.assignee, i.tlp, i.created_at, i.updated_at,
		(SELECT COUNT(*) FROM reports r WHERE r.incident_id = i.id) FROM incidents i`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY i.created_at DESC, i.id DESC LIMIT ? OFFSET ?"
	args = append(args, f.Limit, f.Offset)
	rows, err := s.rdb.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Incident{}
	for rows.Next() {
		var in Incident
		var c, u int64
		if err := rows.Scan(&in.ID, &in.Ticket, &in.Status, &in.Taxonomy, &in.Type, &in.Subject, &in.Requester, &in.Assignee, &in.TLP, &c, &u, &in.Reports); err != nil {
			return nil, err
		}
		in.CreatedAt, in.UpdatedAt = fromMicros(c), fromMicros(u)
		out = append(out, in)
	}
	return out, rows.Err()
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

// GetIncident loads one incident by ticket.
func (s *Store) GetIncident(ctx context.Context, ticket string) (*IncidentDetail, error) {
	list, err := s.ListIncidents(ctx, Filter{Ticket: ticket, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, ErrNotFound
	}
	d := &IncidentDetail{Incident: list[0], ReportList: []Report{}, Events: []Event{}, Outbox: []OutboxEntry{}}
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT id, spool_id, message_id, sender, created_at, report_json FROM reports WHERE incident_id = ? ORDER BY id`), d.ID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var r Report
		var at int64
		var js string
		if err := rows.Scan(&r.ID, &r.SpoolID, &r.MessageID, &r.Sender, &at, &js); err != nil {
			_ = rows.Close()
			return nil, err
		}
		r.CreatedAt, r.Report, r.Indicators = fromMicros(at), json.RawMessage(js), []Indicator{}
		d.ReportList = append(d.ReportList, r)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	for i := range d.ReportList {
		irows, err := s.rdb.QueryContext(ctx, s.q(`SELECT kind, value FROM indicators WHERE report_id = ? ORDER BY id`), d.ReportList[i].ID)
		if err != nil {
			return nil, err
		}
		for irows.Next() {
			var in Indicator
			if err := irows.Scan(&in.Kind, &in.Value); err != nil {
				_ = irows.Close()
				return nil, err
			}
			d.ReportList[i].Indicators = append(d.ReportList[i].Indicators, in)
		}
		if err := irows.Close(); err != nil {
			return nil, err
		}
	}
	erows, err := s.rdb.QueryContext(ctx, s.q(`SELECT at, kind, actor, detail FROM events WHERE incident_id = ? ORDER BY id`), d.ID)
	if err != nil {
		return nil, err
	}
	for erows.Next() {
		var e Event
		var at int64
		if err := erows.Scan(&at, &e.Kind, &e.Actor, &e.Detail); err != nil {
			_ = erows.Close()
			return nil, err
		}
		e.At = fromMicros(at)
		d.Events = append(d.Events, e)
	}
	if err := erows.Close(); err != nil {
		return nil, err
	}
	d.Outbox, err = s.outboxOf(ctx, d.ID)
	return d, err
}

// SetStatus changes an incident's status and/or assignee, logging who did it.
func (s *Store) SetStatus(ctx context.Context, ticket, status, assignee, actor string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		if err := s.queryRow(ctx, tx, `SELECT id FROM incidents WHERE ticket = ?`, ticket).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		if status != "" {
			if _, err := s.exec(ctx, tx, `UPDATE incidents SET status = ?, updated_at = ? WHERE id = ?`, status, micros(s.now()), id); err != nil {
				return err
			}
			if _, err := s.exec(ctx, tx, `INSERT INTO events (incident_id, at, kind, actor, detail) VALUES (?, ?, 'status', ?, ?)`, id, micros(s.now()), actor, status); err != nil {
				return err
			}
		}
		if assignee != "" {
			if _, err := s.exec(ctx, tx, `UPDATE incidents SET assignee = ?, updated_at = ? WHERE id = ?`, assignee, micros(s.now()), id); err != nil {
				return err
			}
			if _, err := s.exec(ctx, tx, `INSERT INTO events (incident_id, at, kind, actor, detail) VALUES (?, ?, 'assignee', ?, ?)`, id, micros(s.now()), actor, assignee); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReportTicket returns a report's JSON and its incident's ticket.
func (s *Store) ReportTicket(ctx context.Context, reportID int64) (json.RawMessage, string, error) {
	var js, ticket string
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT r.report_json, i.ticket FROM reports r JOIN incidents i ON i.id = r.incident_id WHERE r.id = ?`), reportID).Scan(&js, &ticket)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", ErrNotFound
	}
	return json.RawMessage(js), ticket, err
}

// ReportSpool returns the spool row a report was filed from: the raw
// message staff can download.
func (s *Store) ReportSpool(ctx context.Context, reportID int64) (int64, error) {
	var id int64
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT spool_id FROM reports WHERE id = ?`), reportID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return id, err
}
