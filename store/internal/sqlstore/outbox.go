package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/store"
)

// outboxCols are the columns scanOutbox reads.
const outboxCols = `id, incident_id, COALESCE(report_id, 0), kind, recipient, message_id, state, attempts, last_error, created_at, payload`

func scanOutbox(rows *sql.Rows) ([]store.OutboxEntry, error) {
	defer rows.Close()
	out := []store.OutboxEntry{}
	for rows.Next() {
		var e store.OutboxEntry
		var at int64
		if err := rows.Scan(&e.ID, &e.IncidentID, &e.ReportID, &e.Kind, &e.Recipient, &e.MessageID, &e.State, &e.Attempts, &e.LastError, &at, &e.Payload); err != nil {
			return nil, err
		}
		e.CreatedAt = FromMicros(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (d *DB) outboxOf(ctx context.Context, incidentID int64) ([]store.OutboxEntry, error) {
	rows, err := d.R.QueryContext(ctx, d.q(`SELECT `+outboxCols+` FROM outbox WHERE incident_id = ? ORDER BY id`), incidentID)
	if err != nil {
		return nil, err
	}
	return scanOutbox(rows)
}

// ClaimOutbox leases up to n pending (or lease-expired sending) rows.
func (d *DB) ClaimOutbox(ctx context.Context, n int, lease time.Duration) ([]store.OutboxEntry, error) {
	now := Micros(d.Now())
	skip := d.D.SkipLocked()
	var out []store.OutboxEntry
	// A durable commit although it is only a lease: filings commit without
	// waiting for the disk (FileBatch), and this flush (SQLite's WAL fsync,
	// PostgreSQL's WAL flush up to this commit) covers every one of them
	// before any acknowledgement naming their tickets leaves.
	err := d.Tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, d.q(ClaimOutboxSQL(skip)),
			store.OutboxSending, now+lease.Microseconds(), now, now, n, now, n, n)
		if err != nil {
			return err
		}
		out, err = scanOutbox(rows)
		// Oldest first (RETURNING keeps no order of its own): the rate
		// limit counts earlier rows to the same address.
		slices.SortFunc(out, func(a, b store.OutboxEntry) int { return cmp.Compare(a.ID, b.ID) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: claim outbox: %v", store.ErrUnavailable, err)
	}
	return out, nil
}

// ClaimOutboxSQL leases outbox rows as ClaimQueueSQL does queue rows:
// pending rows in order, and rows whose lease ran out, each on its partial
// index.
func ClaimOutboxSQL(skip string) string {
	return `UPDATE outbox SET state = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
		WHERE id IN (SELECT id FROM (
			SELECT id FROM (SELECT id FROM outbox WHERE state = '` + store.OutboxPending + `' AND not_before <= ? ORDER BY id LIMIT ?` + skip + `) AS r
			UNION ALL
			SELECT id FROM (SELECT id FROM outbox WHERE state = '` + store.OutboxSending + `' AND lease_until <= ? ORDER BY lease_until, id LIMIT ?` + skip + `) AS e
		) AS c ORDER BY id LIMIT ?)
		RETURNING ` + outboxCols
}

// MarkSent records a delivered outbox row.
//
// Marks commit without waiting for the disk (LazyTx), like filings: a
// process that is killed loses nothing committed, and a power loss that
// takes a mark leaves the row "sending" until its lease ends, when it is
// sent once more with the same Message-ID: the bound a kill between the
// relay's 250 and the mark already has.
func (d *DB) MarkSent(ctx context.Context, id int64) error {
	return d.mark(ctx, `UPDATE outbox SET state = ?, last_error = '', updated_at = ? WHERE id = ?`, store.OutboxSent, Micros(d.Now()), id)
}

// mark runs one outbox update as MarkSent says.
func (d *DB) mark(ctx context.Context, query string, args ...any) error {
	return d.LazyExec(ctx, query, args...)
}

// MarkOutboxFailed records a failed delivery: retried after backoff, or dead.
func (d *DB) MarkOutboxFailed(ctx context.Context, id int64, detail string, dead bool, backoff time.Duration) error {
	state := store.OutboxPending
	if dead {
		state = store.OutboxDead
	}
	now := d.Now()
	return d.mark(ctx, `UPDATE outbox SET state = ?, last_error = ?, not_before = ?, lease_until = 0, updated_at = ? WHERE id = ?`,
		state, detail, Micros(now.Add(backoff)), Micros(now), id)
}

// PostponeOutbox puts a claimed row back to pending after wait without
// counting the attempt: what failed was not the row (the relay's
// credential is refused), and the row must not become a dead letter while
// the operator renews it.
func (d *DB) PostponeOutbox(ctx context.Context, id int64, detail string, wait time.Duration) error {
	now := d.Now()
	return d.mark(ctx, `UPDATE outbox SET state = ?, attempts = attempts - 1, last_error = ?, not_before = ?, lease_until = 0, updated_at = ? WHERE id = ?`,
		store.OutboxPending, detail, Micros(now.Add(wait)), Micros(now), id)
}

// MarkOutboxSkippedAll records skipped rows with one statement per
// reason (lazy, as every mark): under a flood from one address most rows
// of a claim are skipped by the rate limit, for the same reason.
func (d *DB) MarkOutboxSkippedAll(ctx context.Context, skips []store.OutboxSkip) error {
	now := Micros(d.Now())
	byReason := map[string][]any{}
	var reasons []string
	for _, k := range skips {
		if _, ok := byReason[k.Reason]; !ok {
			reasons = append(reasons, k.Reason)
		}
		byReason[k.Reason] = append(byReason[k.Reason], k.ID)
	}
	for _, r := range reasons {
		ids := byReason[r]
		q := `UPDATE outbox SET state = ?, last_error = ?, lease_until = 0, updated_at = ? WHERE id IN (` +
			strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + `)`
		if err := d.LazyExec(ctx, q, append([]any{store.OutboxSkipped, r, now}, ids...)...); err != nil {
			return err
		}
	}
	return nil
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
func (d *DB) RecentTo(ctx context.Context, r store.Recipients, since time.Time, before int64, upTo int) (int, error) {
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
	args = append(args, Micros(since), store.OutboxAck, store.OutboxFollowUp, store.OutboxSent, store.OutboxSending, before, upTo)
	var n int
	err := d.R.QueryRowContext(ctx, d.q(`SELECT COUNT(*) FROM (SELECT 1 FROM outbox WHERE `+cond+
		` AND created_at >= ? AND kind IN (?, ?) AND state IN (?, ?) AND id < ? LIMIT ?) AS recent`), args...).Scan(&n)
	return n, err
}

// OutboxCounts returns outbox rows per state.
func (d *DB) OutboxCounts(ctx context.Context) (map[string]int, error) {
	rows, err := d.R.QueryContext(ctx, `SELECT state, COUNT(*) FROM outbox GROUP BY state`)
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
