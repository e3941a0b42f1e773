package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/store"
)

// incidentOf is the incident a ticket names: its own, or the one it was
// merged into.
func (d *DB) incidentOf(ctx context.Context, tx *sql.Tx, ticket string) (int64, error) {
	var id int64
	err := d.queryRow(ctx, tx, `SELECT CASE WHEN merged_into <> 0 THEN merged_into ELSE id END FROM incidents WHERE ticket = ?`, ticket).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, store.ErrNotFound
	}
	return id, err
}

// UpdateIncident implements store.Store.
func (d *DB) UpdateIncident(ctx context.Context, ticket string, c store.Change) error {
	return d.Tx(ctx, func(tx *sql.Tx) error {
		id, err := d.incidentOf(ctx, tx, ticket)
		if err != nil {
			return err
		}
		var status, resolution, tk string
		var updated int64
		if err := d.queryRow(ctx, tx, `SELECT status, resolution, updated_at, ticket FROM incidents WHERE id = ?`, id).Scan(&status, &resolution, &updated, &tk); err != nil {
			return err
		}
		if !c.IfUpdated.IsZero() && Micros(c.IfUpdated) != updated {
			return store.ErrConflict
		}
		now := Micros(d.Now())
		set := func(col string, v any, kind, detail string) error {
			if _, err := d.exec(ctx, tx, `UPDATE incidents SET `+col+` = ?, updated_at = ? WHERE id = ?`, v, now, id); err != nil {
				return err
			}
			return d.event(ctx, tx, id, kind, c.Actor, detail)
		}
		if c.Resolution != nil {
			resolution = *c.Resolution
			if err := set("resolution", resolution, "resolution", resolution); err != nil {
				return err
			}
		}
		if c.Assignee != nil {
			who := *c.Assignee
			if who == "" {
				who = "(nobody)"
			}
			if err := set("assignee", *c.Assignee, "assignee", who); err != nil {
				return err
			}
		}
		if c.Priority != "" {
			if err := set("priority", string(c.Priority), "priority", string(c.Priority)); err != nil {
				return err
			}
		}
		if c.Status != "" && string(c.Status) != status {
			if err := set("status", string(c.Status), "status", string(c.Status)); err != nil {
				return err
			}
			if c.Status == vocab.StatusResolved {
				return d.queueResolution(ctx, tx, id, tk, resolution, c)
			}
		}
		_, err = d.exec(ctx, tx, `UPDATE incidents SET updated_at = ? WHERE id = ?`, now, id)
		return err
	})
}

// queueResolution queues the resolution notice of a resolved incident to
// whom its acknowledgement went: a requester the gateway did not answer
// (an auto-reply, a list, a feedback loop) gets none either.
func (d *DB) queueResolution(ctx context.Context, tx *sql.Tx, id int64, ticket, resolution string, c store.Change) error {
	var rcpt string
	var report int64
	err := d.queryRow(ctx, tx, `SELECT recipient, report_id FROM outbox WHERE incident_id = ? AND kind = ? AND report_id IS NOT NULL ORDER BY id LIMIT 1`,
		id, store.OutboxAck).Scan(&rcpt, &report)
	if errors.Is(err, sql.ErrNoRows) {
		return d.event(ctx, tx, id, "resolution-notice", c.Actor, "none: the requester was not acknowledged")
	}
	if err != nil {
		return err
	}
	oid, err := d.queueAnswer(ctx, tx, id, report, ticket, store.OutboxResolved, rcpt, store.ReplyPayload{Text: resolution, Actor: c.Actor}, c.Domain)
	if err != nil {
		return err
	}
	return d.event(ctx, tx, id, "resolution-notice", c.Actor, fmt.Sprintf("resolution notice %d queued to %s", oid, rcpt))
}

// queueAnswer inserts an outbox row answering the requester, threaded to
// the incident.
func (d *DB) queueAnswer(ctx context.Context, tx *sql.Tx, id, report int64, ticket, kind, rcpt string, p store.ReplyPayload, domain string) (int64, error) {
	now := Micros(d.Now())
	js, _ := json.Marshal(p)
	mid := fmt.Sprintf("<%s.%s.%d.%s@%s>", ticketSlug(ticket), kind, report, unguessable(), domain)
	var oid int64
	if err := d.queryRow(ctx, tx, `INSERT INTO outbox (incident_id, report_id, kind, recipient, message_id, payload, state, not_before, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, id, report, kind, rcpt, mid, string(js), store.OutboxPending, now, now, now).Scan(&oid); err != nil {
		return 0, err
	}
	_, err := d.exec(ctx, tx, `INSERT INTO thread_ids (message_id, incident_id) VALUES (?, ?) ON CONFLICT (message_id) DO NOTHING`, strings.ToLower(mid), id)
	return oid, err
}

// AddNote implements store.Store.
func (d *DB) AddNote(ctx context.Context, ticket, actor, text string) error {
	return d.Tx(ctx, func(tx *sql.Tx) error {
		id, err := d.incidentOf(ctx, tx, ticket)
		if err != nil {
			return err
		}
		if _, err := d.exec(ctx, tx, `UPDATE incidents SET updated_at = ? WHERE id = ?`, Micros(d.Now()), id); err != nil {
			return err
		}
		return d.event(ctx, tx, id, "note", actor, text)
	})
}

// errNoRequester is QueueReply's error for an incident with nobody to
// answer.
var errNoRequester = fmt.Errorf("%w: the incident has no requester to answer", store.ErrConflict)

// QueueReply implements store.Store. The reply goes where the
// acknowledgement went (the envelope sender chosen at filing), else to
// the requester, threaded to the requester's latest report.
func (d *DB) QueueReply(ctx context.Context, ticket, actor, text, domain string) (int64, error) {
	var oid int64
	err := d.Tx(ctx, func(tx *sql.Tx) error {
		id, err := d.incidentOf(ctx, tx, ticket)
		if err != nil {
			return err
		}
		var requester, tk string
		if err := d.queryRow(ctx, tx, `SELECT requester, ticket FROM incidents WHERE id = ?`, id).Scan(&requester, &tk); err != nil {
			return err
		}
		rcpt := requester
		var ack string
		if err := d.queryRow(ctx, tx, `SELECT recipient FROM outbox WHERE incident_id = ? AND kind = ? ORDER BY id LIMIT 1`, id, store.OutboxAck).Scan(&ack); err == nil {
			rcpt = ack
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if rcpt == "" {
			return errNoRequester
		}
		var report int64
		err = d.queryRow(ctx, tx, `SELECT id FROM reports WHERE incident_id = ? ORDER BY CASE WHEN sender = ? THEN 0 ELSE 1 END, id DESC LIMIT 1`, id, requester).Scan(&report)
		if err != nil {
			return err
		}
		if oid, err = d.queueAnswer(ctx, tx, id, report, tk, store.OutboxReply, rcpt, store.ReplyPayload{Text: text, Actor: actor}, domain); err != nil {
			return err
		}
		if _, err := d.exec(ctx, tx, `UPDATE incidents SET updated_at = ? WHERE id = ?`, Micros(d.Now()), id); err != nil {
			return err
		}
		return d.event(ctx, tx, id, "reply", actor, fmt.Sprintf("reply %d queued to %s:\n%s", oid, rcpt, text))
	})
	return oid, err
}

// Merge implements store.Store.
func (d *DB) Merge(ctx context.Context, from, into, actor string) error {
	return d.Tx(ctx, func(tx *sql.Tx) error {
		src, err := d.incidentOf(ctx, tx, from)
		if err != nil {
			return err
		}
		dst, err := d.incidentOf(ctx, tx, into)
		if err != nil {
			return err
		}
		if src == dst {
			return fmt.Errorf("%w: %s and %s are one incident", store.ErrConflict, from, into)
		}
		var srcTicket, dstTicket string
		if err := d.queryRow(ctx, tx, `SELECT ticket FROM incidents WHERE id = ?`, src).Scan(&srcTicket); err != nil {
			return err
		}
		if err := d.queryRow(ctx, tx, `SELECT ticket FROM incidents WHERE id = ?`, dst).Scan(&dstTicket); err != nil {
			return err
		}
		for _, table := range []string{"reports", "indicators", "events", "outbox", "constituent_matches", "thread_ids"} {
			if _, err := d.exec(ctx, tx, `UPDATE `+table+` SET incident_id = ? WHERE incident_id = ?`, dst, src); err != nil {
				return err
			}
		}
		now := Micros(d.Now())
		if _, err := d.exec(ctx, tx, `UPDATE incidents SET merged_into = ?, updated_at = ? WHERE id = ? OR merged_into = ?`, dst, now, src, src); err != nil {
			return err
		}
		if _, err := d.exec(ctx, tx, `UPDATE incidents SET updated_at = ? WHERE id = ?`, now, dst); err != nil {
			return err
		}
		return d.event(ctx, tx, dst, "merged", actor, fmt.Sprintf("%s merged into %s; its ticket threads here", srcTicket, dstTicket))
	})
}

// CreateSession implements store.Store; expired sessions go with it.
func (d *DB) CreateSession(ctx context.Context, s store.Session) error {
	return d.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := d.exec(ctx, tx, `DELETE FROM staff_sessions WHERE expires_at <= ?`, Micros(d.Now())); err != nil {
			return err
		}
		_, err := d.exec(ctx, tx, `INSERT INTO staff_sessions (id, actor, token_line, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			s.ID, s.Actor, s.TokenLine, s.CSRF, Micros(s.CreatedAt), Micros(s.ExpiresAt))
		return err
	})
}

// GetSession implements store.Store.
func (d *DB) GetSession(ctx context.Context, id string) (store.Session, error) {
	s := store.Session{ID: id}
	var c, e int64
	err := d.R.QueryRowContext(ctx, d.q(`SELECT actor, token_line, csrf, created_at, expires_at FROM staff_sessions WHERE id = ? AND expires_at > ?`),
		id, Micros(d.Now())).Scan(&s.Actor, &s.TokenLine, &s.CSRF, &c, &e)
	if errors.Is(err, sql.ErrNoRows) {
		return s, store.ErrNotFound
	}
	s.CreatedAt, s.ExpiresAt = FromMicros(c), FromMicros(e)
	return s, err
}

// DeleteSession implements store.Store.
func (d *DB) DeleteSession(ctx context.Context, id string) error {
	return d.Tx(ctx, func(tx *sql.Tx) error {
		_, err := d.exec(ctx, tx, `DELETE FROM staff_sessions WHERE id = ?`, id)
		return err
	})
}
