package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
)

// ImportIncident creates an incident with a given ticket (migration from an
// earlier tracker, tests). The year's counter is raised past its number so
// new tickets never collide with it.
func (d *DB) ImportIncident(ctx context.Context, ticket, subject, requester string, created time.Time) error {
	t, ok := vocab.ParseTicket(ticket)
	if !ok {
		return fmt.Errorf("store: bad ticket %q", ticket)
	}
	year, seq := t.Year, t.Seq
	return d.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := d.exec(ctx, tx, `INSERT INTO ticket_counters (year, last) VALUES (?, 0) ON CONFLICT (year) DO NOTHING`, year); err != nil {
			return err
		}
		if _, err := d.exec(ctx, tx, `UPDATE ticket_counters SET last = ? WHERE year = ? AND last < ?`, seq, year, seq); err != nil {
			return err
		}
		var id int64
		if err := d.queryRow(ctx, tx, `INSERT INTO incidents (ticket, status, subject, requester, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			ticket, vocab.StatusOpen, subject, strings.ToLower(requester), Micros(created), Micros(created)).Scan(&id); err != nil {
			return err
		}
		return d.event(ctx, tx, id, "imported", "", "incident imported with its ticket")
	})
}

// ListIncidents lists incidents newest first.
func (d *DB) ListIncidents(ctx context.Context, f store.Filter) ([]store.Incident, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.Ticket != "" {
		add("i.ticket = ?", f.Ticket)
	} else {
		where = append(where, "i.merged_into = 0") // merged ones are their target's
	}
	if f.Indicator != "" {
		add("i.id IN (SELECT incident_id FROM indicators WHERE value = ?)", strings.ToLower(f.Indicator))
	}
	if f.Constituent != "" {
		add("i.id IN (SELECT incident_id FROM constituent_matches WHERE constituent = ?)", f.Constituent)
	}
	if f.TLP != "" {
		add("i.tlp = ?", f.TLP)
	}
	if f.Assignee != "" {
		add("i.assignee = ?", f.Assignee)
	}
	if f.Priority != "" {
		add("i.priority = ?", f.Priority)
	}
	if f.Text != "" {
		like := "%" + store.LikeEscape(f.Text) + "%"
		where = append(where, `(i.ticket LIKE ? ESCAPE '\' OR i.subject LIKE ? ESCAPE '\' OR i.requester LIKE ? ESCAPE '\')`)
		args = append(args, like, like, like)
	}
	if f.DMARC != "" {
		// The report JSON as json.Marshal writes it: no spaces.
		add(`i.id IN (SELECT incident_id FROM reports WHERE report_json LIKE ? ESCAPE '\')`, "%"+store.LikeEscape(`"dmarc":"`+f.DMARC+`"`)+"%")
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
		add("i.created_at >= ?", Micros(f.Since))
	}
	if !f.Until.IsZero() {
		add("i.created_at < ?", Micros(f.Until))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT i.id, i.ticket, i.status, i.taxonomy, i.type, i.subject, i.requester, i.assignee, i.tlp, i.priority, i.resolution, i.created_at, i.updated_at,
		(SELECT COUNT(*) FROM reports r WHERE r.incident_id = i.id) FROM incidents i`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY i.created_at DESC, i.id DESC LIMIT ? OFFSET ?"
	args = append(args, f.Limit, f.Offset)
	rows, err := d.R.QueryContext(ctx, d.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Incident{}
	for rows.Next() {
		var in store.Incident
		var c, u int64
		if err := rows.Scan(&in.ID, &in.Ticket, &in.Status, &in.Taxonomy, &in.Type, &in.Subject, &in.Requester, &in.Assignee, &in.TLP, &in.Priority, &in.Resolution, &c, &u, &in.Reports); err != nil {
			return nil, err
		}
		in.CreatedAt, in.UpdatedAt = FromMicros(c), FromMicros(u)
		in.Constituents = []store.ConstituentHits{}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	ids := make([]int64, len(out))
	for i := range out {
		ids[i] = out[i].ID
	}
	hits, err := d.constituentsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if h := hits[out[i].ID]; h != nil {
			out[i].Constituents = h
		}
	}
	return out, nil
}

// GetIncident loads one incident by ticket (a merged incident's ticket
// gives the incident it was merged into).
func (d *DB) GetIncident(ctx context.Context, ticket string) (*store.IncidentDetail, error) {
	var target string
	err := d.R.QueryRowContext(ctx, d.q(`SELECT t.ticket FROM incidents i JOIN incidents t ON t.id = i.merged_into WHERE i.ticket = ?`), ticket).Scan(&target)
	if err == nil {
		ticket = target
	} else if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	list, err := d.ListIncidents(ctx, store.Filter{Ticket: ticket, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, store.ErrNotFound
	}
	arows, err := d.R.QueryContext(ctx, d.q(`SELECT ticket FROM incidents WHERE merged_into = ? ORDER BY id`), list[0].ID)
	if err != nil {
		return nil, err
	}
	for arows.Next() {
		var a string
		if err := arows.Scan(&a); err != nil {
			_ = arows.Close()
			return nil, err
		}
		list[0].Aliases = append(list[0].Aliases, a)
	}
	if err := arows.Close(); err != nil {
		return nil, err
	}
	det := &store.IncidentDetail{Incident: list[0], ReportList: []store.Report{}, Events: []store.Event{}, Outbox: []store.OutboxEntry{}}
	rows, err := d.R.QueryContext(ctx, d.q(`SELECT id, spool_id, message_id, sender, created_at, report_json FROM reports WHERE incident_id = ? ORDER BY id`), det.ID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var r store.Report
		var at int64
		var js string
		if err := rows.Scan(&r.ID, &r.SpoolID, &r.MessageID, &r.Sender, &at, &js); err != nil {
			_ = rows.Close()
			return nil, err
		}
		r.CreatedAt, r.Report, r.Indicators = FromMicros(at), json.RawMessage(js), []store.Indicator{}
		det.ReportList = append(det.ReportList, r)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	for i := range det.ReportList {
		irows, err := d.R.QueryContext(ctx, d.q(`SELECT kind, value FROM indicators WHERE report_id = ? ORDER BY id`), det.ReportList[i].ID)
		if err != nil {
			return nil, err
		}
		for irows.Next() {
			var in store.Indicator
			if err := irows.Scan(&in.Kind, &in.Value); err != nil {
				_ = irows.Close()
				return nil, err
			}
			det.ReportList[i].Indicators = append(det.ReportList[i].Indicators, in)
		}
		if err := irows.Close(); err != nil {
			return nil, err
		}
	}
	erows, err := d.R.QueryContext(ctx, d.q(`SELECT at, kind, actor, detail FROM events WHERE incident_id = ? ORDER BY id`), det.ID)
	if err != nil {
		return nil, err
	}
	for erows.Next() {
		var e store.Event
		var at int64
		if err := erows.Scan(&at, &e.Kind, &e.Actor, &e.Detail); err != nil {
			_ = erows.Close()
			return nil, err
		}
		e.At = FromMicros(at)
		det.Events = append(det.Events, e)
	}
	if err := erows.Close(); err != nil {
		return nil, err
	}
	det.Outbox, err = d.outboxOf(ctx, det.ID)
	return det, err
}

// ReportTicket returns a report's JSON and its incident's ticket.
func (d *DB) ReportTicket(ctx context.Context, reportID int64) (json.RawMessage, string, error) {
	var js, ticket string
	err := d.R.QueryRowContext(ctx, d.q(`SELECT r.report_json, i.ticket FROM reports r JOIN incidents i ON i.id = r.incident_id WHERE r.id = ?`), reportID).Scan(&js, &ticket)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", store.ErrNotFound
	}
	return json.RawMessage(js), ticket, err
}

// ReportSpool returns the spool row a report was filed from: the raw
// message staff can download.
func (d *DB) ReportSpool(ctx context.Context, reportID int64) (int64, error) {
	var id int64
	err := d.R.QueryRowContext(ctx, d.q(`SELECT spool_id FROM reports WHERE id = ?`), reportID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, store.ErrNotFound
	}
	return id, err
}
