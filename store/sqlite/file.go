package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/internal/sqlstore"
)

// Filing on SQLite reads and writes a row at a time: the database is in
// process, a statement costs no round trip, and the writer holds the
// database for the whole transaction anyway.

// Lookup implements sqlstore.Dialect. The writer holds the database until
// the commit, so the IDs after each table's AUTOINCREMENT sequence (which
// an explicit ID past it moves on) and the counter are the batch's alone.
func (dialect) Lookup(ctx context.Context, tx *sql.Tx, fs []*store.Filing, year int) ([]sqlstore.Facts, sqlstore.IDs, error) {
	ids, err := reserve(ctx, tx, len(fs), year)
	if err != nil {
		return nil, ids, err
	}
	out := make([]sqlstore.Facts, len(fs))
	for i, f := range fs {
		fa := &out[i]
		// The spool row, the report it was filed as before, and a filed
		// report with its de-duplication key (the raw SHA-256 when the
		// message has no Message-ID, read from the spool row).
		midKey := ""
		if f.MessageID != "" {
			midKey = store.DedupKey(f.MessageID, "")
		}
		var prevR, prevI, dupR, dupI sql.NullInt64
		var prevT, dupT sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT s.sha256, r.id, r.incident_id, ri.ticket, d.id, d.incident_id, di.ticket FROM spool s
			LEFT JOIN reports r ON r.spool_id = s.id LEFT JOIN incidents ri ON ri.id = r.incident_id
			LEFT JOIN reports d ON d.dedup_key = COALESCE(NULLIF(?, ''), 'sha256:' || s.sha256) LEFT JOIN incidents di ON di.id = d.incident_id
			WHERE s.id = ?`, midKey, f.SpoolID).Scan(&fa.SHA256, &prevR, &prevI, &prevT, &dupR, &dupI, &dupT); err != nil {
			return nil, ids, dialect{}.lookupErr(f.SpoolID, err)
		}
		fa.Prev = sqlstore.Ref{Report: prevR.Int64, Incident: prevI.Int64, Ticket: prevT.String}
		fa.Dup = sqlstore.Ref{Report: dupR.Int64, Incident: dupI.Int64, Ticket: dupT.String}
		fa.Refs = make([]sqlstore.Ref, len(f.References))
		for k, ref := range f.References {
			err := tx.QueryRowContext(ctx, `SELECT t.incident_id, i.ticket, i.status FROM thread_ids t JOIN incidents i ON i.id = t.incident_id WHERE t.message_id = ?`,
				strings.ToLower(ref)).Scan(&fa.Refs[k].Incident, &fa.Refs[k].Ticket, &fa.Refs[k].Status)
			if err != nil && !noRows(err) {
				return nil, ids, err
			}
		}
		if f.Ticket != "" {
			t := &fa.Tag
			err := tx.QueryRowContext(ctx, `SELECT i.id, i.requester, i.ticket, i.status, EXISTS (SELECT 1 FROM reports r WHERE r.incident_id = i.id AND r.sender = ?),
				EXISTS (SELECT 1 FROM constituent_matches m WHERE m.incident_id = i.id AND m.constituent = ? AND ? <> '')
				FROM incidents o JOIN incidents i ON i.id = CASE WHEN o.merged_into <> 0 THEN o.merged_into ELSE o.id END WHERE o.ticket = ?`,
				f.Sender, f.SenderConstituent, f.SenderConstituent, f.Ticket).Scan(&t.Incident, &t.Requester, &t.Ticket, &t.Status, &t.SenderFiled, &t.ConcernsSender)
			if err != nil && !noRows(err) {
				return nil, ids, err
			}
		}
	}
	return out, ids, nil
}

// reserve is Lookup's IDs for n filings.
func reserve(ctx context.Context, tx *sql.Tx, n, year int) (sqlstore.IDs, error) {
	var ids sqlstore.IDs
	next := func(table string, k int) ([]int64, error) {
		var last int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0)`, table).Scan(&last); err != nil {
			return nil, err
		}
		out := make([]int64, k)
		for i := range out {
			out[i] = last + 1 + int64(i)
		}
		return out, nil
	}
	var err error
	if ids.Incidents, err = next("incidents", n); err != nil {
		return ids, err
	}
	if ids.Reports, err = next("reports", n); err != nil {
		return ids, err
	}
	if ids.Outbox, err = next("outbox", sqlstore.MaxSends*n); err != nil {
		return ids, err
	}
	err = tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT last FROM ticket_counters WHERE year = ?), 0)`, year).Scan(&ids.LastTicket)
	return ids, err
}

// Write implements sqlstore.Dialect: one statement per table (and per
// chunk of rows), since compiling a statement costs SQLite more than
// running it.
func (dialect) Write(ctx context.Context, tx *sql.Tx, p *sqlstore.Plan) error {
	w := writer{ctx: ctx, tx: tx}
	if p.Tickets > 0 {
		w.exec(`INSERT INTO ticket_counters (year, last) VALUES (?, ?) ON CONFLICT (year) DO UPDATE SET last = excluded.last`, p.TicketYear, p.LastTicket)
	}
	for _, in := range p.Incidents {
		w.row("INSERT INTO incidents (id, ticket, status, taxonomy, type, subject, requester, tlp, created_at, updated_at) VALUES", "",
			in.ID, in.Ticket, in.Status, in.Taxonomy, in.Type, in.Subject, in.Requester, in.TLP, p.Now, p.Now)
	}
	for _, r := range p.Reports {
		w.row("INSERT INTO reports (id, spool_id, incident_id, message_id, dedup_key, sender, report_json, created_at, updated_at) VALUES", "",
			r.ID, r.SpoolID, r.IncidentID, r.MessageID, r.DedupKey, r.Sender, r.JSON, p.Now, p.Now)
	}
	w.flush()
	for _, r := range p.Rewrites {
		w.exec(`UPDATE reports SET report_json = ?, updated_at = ? WHERE id = ?`, r.JSON, p.Now, r.ID)
		w.exec(`DELETE FROM indicators WHERE report_id = ?`, r.ID)
	}
	for _, in := range p.Indicators {
		w.row("INSERT INTO indicators (report_id, incident_id, kind, value) VALUES", "", in.ReportID, in.IncidentID, in.Kind, in.Value)
	}
	for _, m := range p.Matches {
		w.row("INSERT INTO constituent_matches (report_id, incident_id, constituent, kind, value, tlp, created_at) VALUES", "",
			m.ReportID, m.IncidentID, m.Constituent, m.Kind, m.Value, m.TLP, p.Now)
	}
	w.flush()
	rewritten := map[int64]bool{}
	for _, m := range p.RewriteMatches {
		if !rewritten[m.ReportID] {
			rewritten[m.ReportID] = true
			w.exec(`DELETE FROM constituent_matches WHERE report_id = ? AND noticed_at = 0`, m.ReportID)
		}
		w.exec(`INSERT INTO constituent_matches (report_id, incident_id, constituent, kind, value, tlp, created_at)
			SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM constituent_matches
			WHERE report_id = ? AND constituent = ? AND kind = ? AND value = ?)`,
			m.ReportID, m.IncidentID, m.Constituent, m.Kind, m.Value, m.TLP, p.Now, m.ReportID, m.Constituent, m.Kind, m.Value)
	}
	for _, r := range p.Rewrites {
		if !rewritten[r.ID] { // filed again without matches now
			w.exec(`DELETE FROM constituent_matches WHERE report_id = ? AND noticed_at = 0`, r.ID)
		}
	}
	for _, t := range p.ThreadIDs {
		w.row("INSERT INTO thread_ids (message_id, incident_id) VALUES", " ON CONFLICT (message_id) DO NOTHING", t.MessageID, t.IncidentID)
	}
	for _, e := range p.Events {
		w.row("INSERT INTO events (incident_id, at, kind, detail) VALUES", "", e.IncidentID, p.Now, e.Kind, e.Detail)
	}
	for _, id := range p.Touched {
		w.exec(`UPDATE incidents SET updated_at = ? WHERE id = ?`, p.Now, id)
	}
	for _, id := range p.Reopened {
		w.exec(`UPDATE incidents SET status = ? WHERE id = ?`, vocab.StatusOpen, id)
	}
	for _, o := range p.Outbox {
		w.row("INSERT INTO outbox (id, incident_id, report_id, kind, recipient, message_id, payload, state, not_before, created_at, updated_at) VALUES", "",
			o.ID, o.IncidentID, o.ReportID, o.Kind, o.Recipient, o.MessageID, o.Payload, store.OutboxPending, p.Now, p.Now, p.Now)
	}
	for _, q := range p.Done {
		w.row("WITH d(spool_id, outcome) AS (VALUES", fmt.Sprintf(`) UPDATE queue SET state = '%s', outcome = (SELECT outcome FROM d WHERE d.spool_id = queue.spool_id),
			reason = '', last_error = '', lease_until = 0, updated_at = %d WHERE spool_id IN (SELECT spool_id FROM d)`, store.StateDone, p.Now), q.SpoolID, q.Outcome)
	}
	w.flush()
	return w.err
}

// writer sends rows of one statement shape together, as one multi-row
// statement (up to maxRows rows), and keeps the first error.
type writer struct {
	ctx        context.Context
	tx         *sql.Tx
	head, tail string
	rows       int
	tuple      string
	args       []any
	err        error
}

// maxArgs keeps a statement under SQLite's limit on bound parameters.
const maxArgs = 30000

// row adds a row to the statement "head (row), (row)… tail", sending the
// statement being built first when it has another shape or is full.
func (w *writer) row(head, tail string, args ...any) {
	if w.head != head || len(w.args)+len(args) > maxArgs {
		w.flush()
		w.head, w.tail = head, tail
		w.tuple = "(" + strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ") + ")"
	}
	w.rows++
	w.args = append(w.args, args...)
}

// flush sends the statement being built, if any.
func (w *writer) flush() {
	if w.rows == 0 {
		return
	}
	q := w.head + " " + strings.TrimSuffix(strings.Repeat(w.tuple+", ", w.rows), ", ") + w.tail
	w.exec(q, w.args...)
	w.head, w.rows, w.args = "", 0, nil
}

func (w *writer) exec(q string, args ...any) {
	if w.err == nil {
		_, w.err = w.tx.ExecContext(w.ctx, q, args...)
	}
}
