package sqlite

import (
	"context"
	"database/sql"
	"strings"

	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/internal/sqlstore"
)

// Filing on SQLite reads and writes a row at a time: the database is in
// process, a statement costs no round trip, and the writer holds the
// database for the whole transaction anyway.

// Lookup implements sqlstore.Dialect.
func (dialect) Lookup(ctx context.Context, tx *sql.Tx, fs []*store.Filing) ([]sqlstore.Facts, error) {
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
			return nil, dialect{}.lookupErr(f.SpoolID, err)
		}
		fa.Prev = sqlstore.Ref{Report: prevR.Int64, Incident: prevI.Int64, Ticket: prevT.String}
		fa.Dup = sqlstore.Ref{Report: dupR.Int64, Incident: dupI.Int64, Ticket: dupT.String}
		fa.Refs = make([]sqlstore.Ref, len(f.References))
		for k, ref := range f.References {
			err := tx.QueryRowContext(ctx, `SELECT t.incident_id, i.ticket FROM thread_ids t JOIN incidents i ON i.id = t.incident_id WHERE t.message_id = ?`,
				strings.ToLower(ref)).Scan(&fa.Refs[k].Incident, &fa.Refs[k].Ticket)
			if err != nil && !noRows(err) {
				return nil, err
			}
		}
		if f.Ticket != "" {
			t := &fa.Tag
			err := tx.QueryRowContext(ctx, `SELECT i.id, i.requester, EXISTS (SELECT 1 FROM reports r WHERE r.incident_id = i.id AND r.sender = ?)
				FROM incidents i WHERE i.ticket = ?`, f.Sender, f.Ticket).Scan(&t.Incident, &t.Requester, &t.SenderFiled)
			if err != nil && !noRows(err) {
				return nil, err
			}
		}
	}
	return out, nil
}

// Allocate implements sqlstore.Dialect: the next IDs of each table (the
// AUTOINCREMENT sequence, which an explicit ID past it moves on) and the
// ticket numbers. The writer holds the database until the commit, so
// nobody else takes them meanwhile.
func (dialect) Allocate(ctx context.Context, tx *sql.Tx, n sqlstore.Counts, year int) (sqlstore.IDs, error) {
	var ids sqlstore.IDs
	next := func(table string, k int) ([]int64, error) {
		if k == 0 {
			return nil, nil
		}
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
	if ids.Incidents, err = next("incidents", n.Incidents); err != nil {
		return ids, err
	}
	if ids.Reports, err = next("reports", n.Reports); err != nil {
		return ids, err
	}
	if ids.Outbox, err = next("outbox", n.Outbox); err != nil {
		return ids, err
	}
	if n.Incidents > 0 {
		err = tx.QueryRowContext(ctx, sqlstore.TicketCounterSQL, year, n.Incidents).Scan(&ids.LastTicket)
	}
	return ids, err
}

// Write implements sqlstore.Dialect.
func (dialect) Write(ctx context.Context, tx *sql.Tx, p *sqlstore.Plan) error {
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	for _, in := range p.Incidents {
		if err := exec(`INSERT INTO incidents (id, ticket, status, taxonomy, type, subject, requester, tlp, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			in.ID, in.Ticket, in.Status, in.Taxonomy, in.Type, in.Subject, in.Requester, in.TLP, p.Now, p.Now); err != nil {
			return err
		}
	}
	for _, r := range p.Reports {
		if err := exec(`INSERT INTO reports (id, spool_id, incident_id, message_id, dedup_key, sender, report_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.SpoolID, r.IncidentID, r.MessageID, r.DedupKey, r.Sender, r.JSON, p.Now, p.Now); err != nil {
			return err
		}
	}
	for _, r := range p.Rewrites {
		if err := exec(`UPDATE reports SET report_json = ?, updated_at = ? WHERE id = ?`, r.JSON, p.Now, r.ID); err != nil {
			return err
		}
		if err := exec(`DELETE FROM indicators WHERE report_id = ?`, r.ID); err != nil {
			return err
		}
	}
	for _, in := range p.Indicators {
		if err := exec(`INSERT INTO indicators (report_id, incident_id, kind, value) VALUES (?, ?, ?, ?)`, in.ReportID, in.IncidentID, in.Kind, in.Value); err != nil {
			return err
		}
	}
	for _, t := range p.ThreadIDs {
		if err := exec(`INSERT INTO thread_ids (message_id, incident_id) VALUES (?, ?) ON CONFLICT (message_id) DO NOTHING`, t.MessageID, t.IncidentID); err != nil {
			return err
		}
	}
	for _, e := range p.Events {
		if err := exec(`INSERT INTO events (incident_id, at, kind, detail) VALUES (?, ?, ?, ?)`, e.IncidentID, p.Now, e.Kind, e.Detail); err != nil {
			return err
		}
	}
	for _, id := range p.Touched {
		if err := exec(`UPDATE incidents SET updated_at = ? WHERE id = ?`, p.Now, id); err != nil {
			return err
		}
	}
	for _, o := range p.Outbox {
		if err := exec(`INSERT INTO outbox (id, incident_id, report_id, kind, recipient, message_id, payload, state, not_before, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.ID, o.IncidentID, o.ReportID, o.Kind, o.Recipient, o.MessageID, o.Payload, store.OutboxPending, p.Now, p.Now, p.Now); err != nil {
			return err
		}
	}
	for _, q := range p.Done {
		if err := exec(`UPDATE queue SET state = ?, outcome = ?, reason = '', last_error = '', lease_until = 0, updated_at = ? WHERE spool_id = ?`,
			store.StateDone, q.Outcome, p.Now, q.SpoolID); err != nil {
			return err
		}
	}
	return nil
}
