package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Outbox states.
const (
	OutboxPending = "pending"
	OutboxSending = "sending"
	OutboxSent    = "sent"
	OutboxDead    = "dead"
	// OutboxSkipped: not sent on purpose (a rate limit), with the reason.
	OutboxSkipped = "skipped"
)

// Outbox row kinds.
const (
	OutboxAck      = "ack"      // acknowledgement of a new report
	OutboxFollowUp = "followup" // "added to TICKET" note for a follow-up
	OutboxAlert    = "alert"    // staff alert mail to the duty address
	OutboxWebhook  = "webhook"  // staff alert as an HMAC-signed JSON POST
)

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
}

const outboxCols = `id, incident_id, COALESCE(report_id, 0), kind, recipient, message_id, state, attempts, last_error, created_at`

func scanOutbox(rows *sql.Rows) ([]OutboxEntry, error) {
	defer rows.Close()
	out := []OutboxEntry{}
	for rows.Next() {
		var e OutboxEntry
		var at int64
		if err := rows.Scan(&e.ID, &e.IncidentID, &e.ReportID, &e.Kind, &e.Recipient, &e.MessageID, &e.State, &e.Attempts, &e.LastError, &at); err != nil {
			return nil, err
		}
		e.CreatedAt = fromMicros(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *Store) outboxOf(ctx context.Context, incidentID int64) ([]OutboxEntry, error) {
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT `+outboxCols+` FROM outbox WHERE incident_id = ? ORDER BY id`), incidentID)
	if err != nil {
		return nil, err
	}
	return scanOutbox(rows)
}

// ClaimOutbox leases up to n pending (or lease-expired sending) rows.
func (s *Store) ClaimOutbox(ctx context.Context, n int, lease time.Duration) ([]OutboxEntry, error) {
	now := micros(s.now())
	skip := ""
	if s.driver == Postgres {
		skip = " FOR UPDATE SKIP LOCKED"
	}
	var out []OutboxEntry
	// A durable commit although it is only a lease: filings commit without
	// waiting for the disk (FileBatch), and this flush (SQLite's WAL fsync,
	// PostgreSQL's WAL flush up to this commit) covers every one of them
	// before any acknowledgement naming their tickets leaves.
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := s.query(ctx, tx, claimOutboxSQL(skip),
			OutboxSending, now+lease.Microseconds(), now, now, n, now, n, n)
		if err != nil {
			return err
		}
		out, err = scanOutbox(rows)
		// Oldest first (RETURNING keeps no order of its own): the rate
		// limit counts earlier rows to the same address.
		slices.SortFunc(out, func(a, b OutboxEntry) int { return cmp.Compare(a.ID, b.ID) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: claim outbox: %v", ErrUnavailable, err)
	}
	return out, nil
}

// claimOutboxSQL leases outbox rows as claimQueueSQL does queue rows:
// pending rows in order, and rows whose lease ran out, each on its partial
// index.
func claimOutboxSQL(skip string) string {
	return `UPDATE outbox SET state = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
		WHERE id IN (SELECT id FROM (
			SELECT id FROM (SELECT id FROM outbox WHERE state = '` + OutboxPending + `' AND not_before <= ? ORDER BY id LIMIT ?` + skip + `) AS r
			UNION ALL
			SELECT id FROM (SELECT id FROM outbox WHERE state = '` + OutboxSending + `' AND lease_until <= ? ORDER BY lease_until, id LIMIT ?` + skip + `) AS e
		) AS c ORDER BY id LIMIT ?)
		RETURNING ` + outboxCols
}

// MarkSent records a delivered outbox row.
//
// On SQLite marks commit without waiting for the disk (lazyTx), like
// filings: a process that is killed loses nothing committed, and a power
// loss that takes a mark leaves the row "sending" until its lease ends,
// when it is sent once more with the same Message-ID: the bound a kill
// between the relay's 250 and the mark already has. A durable commit per
// mark held SQLite's one connection for an fsync per acknowledgement. On
// PostgreSQL a mark stays one autocommit statement: a transaction to
// switch its commit to asynchronous would cost four round trips, and
// PostgreSQL flushes concurrent commits together anyway.
func (s *Store) MarkSent(ctx context.Context, id int64) error {
	return s.mark(ctx, `UPDATE outbox SET state = ?, last_error = '', updated_at = ? WHERE id = ?`, OutboxSent, micros(s.now()), id)
}

// mark runs one outbox update as MarkSent says.
func (s *Store) mark(ctx context.Context, query string, args ...any) error {
	if s.driver == Postgres {
		_, err := s.db.ExecContext(ctx, s.q(query), args...)
		return err
	}
	return s.lazyTx(ctx, func(tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, query, args...)
		return err
	})
}

// MarkOutboxFailed records a failed delivery: retried after backoff, or dead.
func (s *Store) MarkOutboxFailed(ctx context.Context, id int64, detail string, dead bool, backoff time.Duration) error {
	state := OutboxPending
	if dead {
		state = OutboxDead
	}
	now := s.now()
	return s.mark(ctx, `UPDATE outbox SET state = ?, last_error = ?, not_before = ?, lease_until = 0, updated_at = ? WHERE id = ?`,
		state, detail, micros(now.Add(backoff)), micros(now), id)
}

// PostponeOutbox puts a claimed row back to pending after wait without
// counting the attempt: what failed was not the row (the relay's
// credential is refused), and the row must not become a dead letter while
// the operator renews it.
func (s *Store) PostponeOutbox(ctx context.Context, id int64, detail string, wait time.Duration) error {
	now := s.now()
	return s.mark(ctx, `UPDATE outbox SET state = ?, attempts = attempts - 1, last_error = ?, not_before = ?, lease_until = 0, updated_at = ? WHERE id = ?`,
		OutboxPending, detail, micros(now.Add(wait)), micros(now), id)
}

// OutboxSkip is a row not sent on purpose, and why.
type OutboxSkip struct {
	ID     int64
	Reason string
}

// MarkOutboxSkippedAll records several skipped rows in one transaction
// (lazy, as every mark): under a flood from one address most rows of a
// claim are skipped by the rate limit, and a transaction each held
// SQLite's one connection once per message for nothing sent.
func (s *Store) MarkOutboxSkippedAll(ctx context.Context, skips []OutboxSkip) error {
	if len(skips) == 0 {
		return nil
	}
	now := micros(s.now())
	if s.driver == Postgres {
		// One autocommit statement, as for the other marks.
		ids := make([]int64, len(skips))
		reasons := make([]string, len(skips))
		for i, k := range skips {
			ids[i], reasons[i] = k.ID, k.Reason
		}
		_, err := s.db.ExecContext(ctx, `UPDATE outbox o SET state = $1, last_error = u.reason, lease_until = 0, updated_at = $2
			FROM unnest($3::bigint[], $4::text[]) AS u(id, reason) WHERE o.id = u.id`, OutboxSkipped, now, ids, reasons)
		return err
	}
	return s.lazyTx(ctx, func(tx *sql.Tx) error {
		for _, k := range skips {
			if _, err := s.exec(ctx, tx, `UPDATE outbox SET state = ?, last_error = ?, lease_until = 0, updated_at = ? WHERE id = ?`,
				OutboxSkipped, k.Reason, now, k.ID); err != nil {
				return err
			}
		}
		return nil
	})
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

// RecentTo counts the acknowledgements and follow-up notes to the
// recipients r created since, sent or being sent, with an ID below
// before: the count behind the hourly budgets (per address, per domain,
// in all), for the rows a writer has claimed from before on (it counts
// what it sends of those itself). It is read from the store, so the
// budgets hold across daemons. Counting stops at upTo (the budget): a
// correspondent who mails us all day (a partner's feed, a load test) must
// not make each acknowledgement count every row of the last hour; the
// rows sent come first in the hour, and those skipped after them are not
// read.
func (s *Store) RecentTo(ctx context.Context, r Recipients, since time.Time, before int64, upTo int) (int, error) {
	var who []string
	args := []any{}
	if r.Exact != "" {
		who = append(who, "recipient = ?")
		args = append(args, r.Exact)
	}
	for _, l := range r.Like {
		who = append(who, `recipient LIKE ? ESCAPE '\'`)
		args = append(args, l)
	}
	cond := "TRUE"
	if !r.All {
		if len(who) == 0 {
			return 0, nil
		}
		cond = "(" + strings.Join(who, " OR ") + ")"
	}
	args = append(args, micros(since), OutboxAck, OutboxFollowUp, OutboxSent, OutboxSending, before, upTo)
	var n int
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM (SELECT 1 FROM outbox WHERE `+cond+
		` AND created_at >= ? AND kind IN (?, ?) AND state IN (?, ?) AND id < ? LIMIT ?) AS recent`), args...).Scan(&n)
	return n, err
}

// OutboxCounts returns outbox rows per state.
func (s *Store) OutboxCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT state, COUNT(*) FROM outbox GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}
