package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
)

// AddEvent implements store.Store.
func (d *DB) AddEvent(ctx context.Context, incidents []int64, kind, actor, detail string) error {
	if len(incidents) == 0 {
		return nil
	}
	return d.Tx(ctx, func(tx *sql.Tx) error {
		for _, id := range incidents {
			if err := d.event(ctx, tx, id, kind, actor, detail); err != nil {
				return err
			}
		}
		return nil
	})
}

// PendingConstituents implements store.Store.
func (d *DB) PendingConstituents(ctx context.Context) ([]store.PendingConstituent, error) {
	rows, err := d.R.QueryContext(ctx, `SELECT constituent, COUNT(*), MIN(created_at) FROM constituent_matches
		WHERE noticed_at = 0 GROUP BY constituent ORDER BY MIN(id)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.PendingConstituent
	for rows.Next() {
		var p store.PendingConstituent
		var at int64
		if err := rows.Scan(&p.Constituent, &p.Count, &at); err != nil {
			return nil, err
		}
		p.Oldest = FromMicros(at)
		out = append(out, p)
	}
	return out, rows.Err()
}

// PendingMatches implements store.Store.
func (d *DB) PendingMatches(ctx context.Context, constituent string, limit int) ([]store.PendingMatch, error) {
	rows, err := d.R.QueryContext(ctx, d.q(`SELECT m.id, m.report_id, m.incident_id, i.ticket, i.taxonomy, i.type, r.sender, m.tlp,
		m.constituent, m.kind, m.value, m.created_at
		FROM constituent_matches m JOIN incidents i ON i.id = m.incident_id JOIN reports r ON r.id = m.report_id
		WHERE m.noticed_at = 0 AND m.constituent = ? ORDER BY m.id LIMIT ?`), constituent, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.PendingMatch
	for rows.Next() {
		var m store.PendingMatch
		var at int64
		if err := rows.Scan(&m.ID, &m.ReportID, &m.IncidentID, &m.Ticket, &m.Taxonomy, &m.Type, &m.Requester, &m.TLP,
			&m.Constituent, &m.Kind, &m.Value, &at); err != nil {
			return nil, err
		}
		m.CreatedAt = FromMicros(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// inChunk bounds the IDs of one IN (…) list.
const inChunk = 500

// QueueNotice implements store.Store. The transaction is durable: the
// matches it marks are what stops the next pass from sending them again.
func (d *DB) QueueNotice(ctx context.Context, n store.Notice) ([]int64, error) {
	if len(n.MatchIDs) == 0 {
		return nil, nil
	}
	var ids []int64
	err := d.Tx(ctx, func(tx *sql.Tx) error {
		ids = nil
		now := Micros(d.Now())
		type ref struct{ incident, report int64 }
		var refs []ref
		for part := range slices.Chunk(n.MatchIDs, inChunk) {
			in, args := inList(part)
			res, err := d.exec(ctx, tx, `UPDATE constituent_matches SET noticed_at = ? WHERE noticed_at = 0 AND id IN (`+in+`)`, append([]any{now}, args...)...)
			if err != nil {
				return err
			}
			if k, err := res.RowsAffected(); err != nil {
				return err
			} else if int(k) != len(part) {
				return store.ErrConflict
			}
			rows, err := tx.QueryContext(ctx, d.q(`SELECT incident_id, report_id FROM constituent_matches WHERE id IN (`+in+`) ORDER BY id`), args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var r ref
				if err := rows.Scan(&r.incident, &r.report); err != nil {
					_ = rows.Close()
					return err
				}
				refs = append(refs, r)
			}
			if err := rows.Close(); err != nil {
				return err
			}
		}
		var incidents []int64
		for _, r := range refs {
			if !slices.Contains(incidents, r.incident) {
				incidents = append(incidents, r.incident)
			}
		}
		first := refs[0]
		var ticket string
		if err := d.queryRow(ctx, tx, `SELECT ticket FROM incidents WHERE id = ?`, first.incident).Scan(&ticket); err != nil {
			return err
		}
		var notes []string
		for _, row := range n.Rows {
			state := store.OutboxPending
			if row.Held {
				state = store.OutboxHeld
			}
			mid := fmt.Sprintf("<%s.notice.%d.%s@%s>", ticketSlug(ticket), first.report, unguessable(), n.Domain)
			var id int64
			if err := d.queryRow(ctx, tx, `INSERT INTO outbox (incident_id, report_id, kind, recipient, message_id, payload, state, not_before, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
				first.incident, first.report, store.OutboxNotice, row.Recipient, mid, row.Payload, state, now, now, now).Scan(&id); err != nil {
				return err
			}
			// A constituent's reply threads to the incident.
			if _, err := d.exec(ctx, tx, `INSERT INTO thread_ids (message_id, incident_id) VALUES (?, ?) ON CONFLICT (message_id) DO NOTHING`,
				strings.ToLower(mid), first.incident); err != nil {
				return err
			}
			ids = append(ids, id)
			notes = append(notes, fmt.Sprintf("notice %d to %s: %s", id, row.Recipient, n.Note))
		}
		if len(n.Rows) == 0 {
			notes = append(notes, n.Note)
		}
		for _, inc := range incidents {
			for _, note := range notes {
				if err := d.event(ctx, tx, inc, "notice", "", note); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return ids, err
}

// ReleaseNotice implements store.Store.
func (d *DB) ReleaseNotice(ctx context.Context, ticket string, id int64, actor string) error {
	return d.Tx(ctx, func(tx *sql.Tx) error {
		var kind, state, payload string
		err := d.queryRow(ctx, tx, `SELECT kind, state, payload FROM outbox WHERE id = ?`, id).Scan(&kind, &state, &payload)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		var p store.NoticePayload
		if kind != store.OutboxNotice || json.Unmarshal([]byte(payload), &p) != nil || !slices.Contains(p.Tickets, ticket) {
			return store.ErrNotFound
		}
		now := Micros(d.Now())
		res, err := d.exec(ctx, tx, `UPDATE outbox SET state = ?, not_before = ?, updated_at = ? WHERE id = ? AND state = ?`,
			store.OutboxPending, now, now, id, store.OutboxHeld)
		if err != nil {
			return err
		}
		if k, err := res.RowsAffected(); err != nil {
			return err
		} else if k != 1 {
			return store.ErrConflict
		}
		for _, inc := range p.Incidents {
			if err := d.event(ctx, tx, inc, "notice", actor, fmt.Sprintf("notice %d released by %s", id, actor)); err != nil {
				return err
			}
		}
		return nil
	})
}

// constituentsOf reads the constituent hits of incidents, by incident.
func (d *DB) constituentsOf(ctx context.Context, incidents []int64) (map[int64][]store.ConstituentHits, error) {
	out := map[int64][]store.ConstituentHits{}
	for part := range slices.Chunk(incidents, inChunk) {
		in, args := inList(part)
		rows, err := d.R.QueryContext(ctx, d.q(`SELECT incident_id, constituent, kind, value FROM constituent_matches
			WHERE incident_id IN (`+in+`) ORDER BY incident_id, constituent, id`), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var inc int64
			var c, v string
			var k vocab.IndicatorKind
			if err := rows.Scan(&inc, &c, &k, &v); err != nil {
				_ = rows.Close()
				return nil, err
			}
			hits := out[inc]
			if len(hits) == 0 || hits[len(hits)-1].ID != c {
				hits = append(hits, store.ConstituentHits{ID: c})
			}
			h := &hits[len(hits)-1]
			in := store.Indicator{Kind: k, Value: v}
			if !slices.Contains(h.Indicators, in) { // two reports may name it
				h.Indicators = append(h.Indicators, in)
			}
			out[inc] = hits
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// inList is "?, ?, …" for ids and the ids as arguments.
func inList(ids []int64) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", "), args
}
