package sqlstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/madoguchi/madoguchi/store"
)

// QueueRow is the state, worker, lease and attempts a new queue row
// starts with.
func QueueRow(m *store.Message, now time.Time) (state, worker string, leaseUntil int64, attempts int) {
	if m.ClaimedBy == "" {
		return store.StateReady, "", 0, 0
	}
	return store.StateClaimed, m.ClaimedBy, Micros(now.Add(max(m.Lease, time.Minute))), 1
}

// Spool commits a message and its queue row. It is the acceptance point:
// nil means durable.
func (d *DB) Spool(ctx context.Context, m *store.Message) (int64, error) {
	ids, err := d.SpoolBatch(ctx, []*store.Message{m})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// SpoolBatch commits several messages in one transaction (group commit): one
// durable commit covers them all, and none is durable before it.
func (d *DB) SpoolBatch(ctx context.Context, ms []*store.Message) ([]int64, error) {
	now := d.Now()
	ids := make([]int64, len(ms))
	err := d.Tx(ctx, func(tx *sql.Tx) error {
		for i, m := range ms {
			id, err := d.spoolTx(ctx, tx, m, now)
			if err != nil {
				return err
			}
			ids[i] = id
		}
		return nil
	})
	return ids, err
}

// PrepareSpool fills in what the spool row records about m (hash, size,
// received time) and returns its recipients as JSON.
func PrepareSpool(m *store.Message, now time.Time) string {
	if m.Source == nil {
		sum := sha256.Sum256(m.Raw)
		m.SHA256 = hex.EncodeToString(sum[:])
		m.Size = int64(len(m.Raw))
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = now
	}
	rcpt, _ := json.Marshal(nonNil(m.RcptTo))
	return string(rcpt)
}

// NonNilBytes is b, or an empty slice for nil (a NOT NULL column).
func NonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// spoolTx inserts one message and its queue row inside tx.
func (d *DB) spoolTx(ctx context.Context, tx *sql.Tx, m *store.Message, now time.Time) (int64, error) {
	raw := NonNilBytes(m.Raw)
	rcpt := PrepareSpool(m, now)
	var id int64
	err := d.queryRow(ctx, tx, `INSERT INTO spool (sha256, channel, mail_from, rcpt_to, peer, received_at, size, raw)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		m.SHA256, m.Channel, m.MailFrom, rcpt, m.Peer, Micros(m.ReceivedAt), m.Size, raw).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("%w: spool insert: %v", store.ErrUnavailable, err)
	}
	if m.Source != nil {
		if err := d.spoolChunks(ctx, tx, id, m); err != nil {
			return 0, err
		}
	}
	state, worker, lease, attempts := QueueRow(m, now)
	if _, err := d.exec(ctx, tx, `INSERT INTO queue (spool_id, state, not_before, updated_at, worker, lease_until, attempts) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		id, state, Micros(now), Micros(now), worker, lease, attempts); err != nil {
		return 0, fmt.Errorf("%w: queue insert: %v", store.ErrUnavailable, err)
	}
	m.ID = id
	return id, nil
}

// spoolChunks copies m.Source into spool_chunks, hashing as it goes, and
// records the size and SHA-256 of the whole on the spool row.
func (d *DB) spoolChunks(ctx context.Context, tx *sql.Tx, id int64, m *store.Message) error {
	if _, err := m.Source.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool source: %w", err)
	}
	h := sha256.New()
	buf := make([]byte, store.ChunkSize)
	var size int64
	for seq := 0; ; seq++ {
		n, err := io.ReadFull(m.Source, buf)
		if n > 0 {
			h.Write(buf[:n])
			size += int64(n)
			if _, err := d.exec(ctx, tx, `INSERT INTO spool_chunks (spool_id, seq, data) VALUES (?, ?, ?)`, id, seq, buf[:n]); err != nil {
				return fmt.Errorf("%w: spool chunk: %v", store.ErrUnavailable, err)
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("spool source: %w", err)
		}
	}
	m.SHA256, m.Size = hex.EncodeToString(h.Sum(nil)), size
	_, err := d.exec(ctx, tx, `UPDATE spool SET sha256 = ?, size = ? WHERE id = ?`, m.SHA256, size, id)
	return err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetMessage loads one spooled message.
func (d *DB) GetMessage(ctx context.Context, id int64) (*store.Message, error) {
	m, err := ScanMessage(d.R.QueryRowContext(ctx, d.q(`SELECT `+MessageColumns+` FROM spool WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if len(m.Raw) == 0 && m.Size > 0 {
		// A chunked message: the pipeline needs it whole to parse it.
		rows, err := d.R.QueryContext(ctx, d.q(`SELECT data FROM spool_chunks WHERE spool_id = ? ORDER BY seq`), id)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		raw := make([]byte, 0, m.Size)
		for rows.Next() {
			var chunk []byte
			if err := rows.Scan(&chunk); err != nil {
				return nil, err
			}
			raw = append(raw, chunk...)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		m.Raw = raw
	}
	return m, nil
}

// MessageColumns are the spool columns ScanMessage reads.
const MessageColumns = `id, sha256, channel, mail_from, rcpt_to, peer, received_at, size, raw`

// ScanMessage reads one spool row of MessageColumns, after the columns
// read into before (if any).
func ScanMessage(row interface{ Scan(...any) error }, before ...any) (*store.Message, error) {
	var m store.Message
	var rcpt string
	var at int64
	if err := row.Scan(append(before, &m.ID, &m.SHA256, &m.Channel, &m.MailFrom, &rcpt, &m.Peer, &at, &m.Size, &m.Raw)...); err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(rcpt), &m.RcptTo)
	m.ReceivedAt = FromMicros(at)
	return &m, nil
}

// A row whose workers all stopped while processing it (Claim,
// ClaimMessages) is quarantined with these.
const (
	ReasonCrashed = "crashed"
	DetailCrashed = "the worker stopped while processing it on every attempt"
)

// Claim leases up to n ready (or lease-expired) queue rows for worker. Rows
// whose attempts would exceed maxAttempts are quarantined ("crashed": a
// worker died on them each time) instead of returned.
func (d *DB) Claim(ctx context.Context, worker string, n int, lease time.Duration, maxAttempts int) ([]store.Claim, error) {
	now := Micros(d.Now())
	skip := d.D.SkipLocked()
	var out []store.Claim
	err := d.LazyTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, d.q(ClaimQueueSQL(skip)),
			store.StateClaimed, now+lease.Microseconds(), worker, now, now, now, n, now, n)
		if err != nil {
			return err
		}
		var over []int64
		for rows.Next() {
			var c store.Claim
			if err := rows.Scan(&c.SpoolID, &c.Attempts); err != nil {
				_ = rows.Close()
				return err
			}
			if c.Attempts > maxAttempts {
				over = append(over, c.SpoolID)
				continue
			}
			out = append(out, c)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		// Oldest first, as the batch is filed in this order (a reply
		// after what it replies to): RETURNING keeps no order of its own.
		slices.SortFunc(out, func(a, b store.Claim) int { return cmp.Compare(a.SpoolID, b.SpoolID) })
		for _, id := range over {
			if _, err := d.exec(ctx, tx, `UPDATE queue SET state = ?, reason = ?, last_error = ?, updated_at = ? WHERE spool_id = ?`,
				store.StateQuarantined, ReasonCrashed, DetailCrashed, now, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: claim: %v", store.ErrUnavailable, err)
	}
	return out, nil
}

// ClaimMessages is Claim followed by GetMessage for each claimed row: the
// claimed rows (oldest first) and their messages. A message that cannot be
// read is nil.
func (d *DB) ClaimMessages(ctx context.Context, worker string, n int, lease time.Duration, maxAttempts int) ([]store.Claim, []*store.Message, error) {
	cl, err := d.Claim(ctx, worker, n, lease, maxAttempts)
	if err != nil || len(cl) == 0 {
		return nil, nil, err
	}
	msgs := make([]*store.Message, len(cl))
	for i, c := range cl {
		m, err := d.GetMessage(ctx, c.SpoolID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, nil, err
		}
		msgs[i] = m
	}
	return cl, msgs, nil
}

// ClaimQueueSQL leases the oldest ready rows and rows whose lease ran out:
// ready rows in spool order on the partial index of ready rows, leased rows
// longest expired first on theirs (the states are literals, or neither
// database knows those indexes apply), each limited on its own, then the n
// with the lowest spool IDs of both.
// An OR of the two read every ready row and sorted them, so that a claim
// cost as much as the backlog was long (migration 0003). skip is
// PostgreSQL's row-locking clause.
//
// A row whose lease ran out was being processed when its worker died (or
// took longer than the lease): it may be what killed the daemon. Such a
// row is claimed alone, one at a time, and no ready row with it, until
// none is left: a message that crashes the daemon is then retried and
// quarantined by itself, not with the seven others of its batch.
//
// Its arguments: state, lease_until, worker, updated_at, now (ready),
// now (expired, none?), n, now (expired), n.
func ClaimQueueSQL(skip string) string {
	return `UPDATE queue SET state = ?, lease_until = ?, worker = ?, attempts = attempts + 1, updated_at = ?
		WHERE spool_id IN (SELECT spool_id FROM (
			SELECT spool_id FROM (SELECT spool_id FROM queue WHERE state = '` + store.StateReady + `' AND not_before <= ?
				AND NOT EXISTS (SELECT 1 FROM queue x WHERE x.state = '` + store.StateClaimed + `' AND x.lease_until <= ?)
				ORDER BY spool_id LIMIT ?` + skip + `) AS r
			UNION ALL
			SELECT spool_id FROM (SELECT spool_id FROM queue WHERE state = '` + store.StateClaimed + `' AND lease_until <= ? ORDER BY lease_until, spool_id LIMIT 1` + skip + `) AS e
		) AS c ORDER BY spool_id LIMIT ?)
		RETURNING spool_id, attempts`
}

// Release hands claimed rows back to the queue untouched (ready at once,
// the attempt not counted): a worker that claimed more bytes than it
// files in one go gives back the rest.
func (d *DB) Release(ctx context.Context, worker string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	now := Micros(d.Now())
	return d.Tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := d.exec(ctx, tx, `UPDATE queue SET state = ?, attempts = attempts - 1, worker = '', lease_until = 0, not_before = ?, updated_at = ?
				WHERE spool_id = ? AND state = ? AND worker = ?`, store.StateReady, now, now, id, store.StateClaimed, worker); err != nil {
				return err
			}
		}
		return nil
	})
}

// Fail records a failed attempt. Before maxAttempts the row returns to ready
// after an exponential back-off; at maxAttempts it is quarantined with the
// reason code, never retried on its own and never blocking others.
func (d *DB) Fail(ctx context.Context, spoolID int64, reason, detail string, maxAttempts int) (quarantined bool, err error) {
	now := d.Now()
	err = d.Tx(ctx, func(tx *sql.Tx) error {
		var attempts int
		if err := d.queryRow(ctx, tx, `SELECT attempts FROM queue WHERE spool_id = ?`, spoolID).Scan(&attempts); err != nil {
			return err
		}
		state := store.StateReady
		if attempts >= maxAttempts {
			state = store.StateQuarantined
			quarantined = true
		}
		backoff := time.Duration(1<<min(attempts, 10)) * time.Second
		_, err := d.exec(ctx, tx, `UPDATE queue SET state = ?, reason = ?, last_error = ?, not_before = ?, lease_until = 0, updated_at = ? WHERE spool_id = ?`,
			state, reason, detail, Micros(now.Add(backoff)), Micros(now), spoolID)
		return err
	})
	return quarantined, err
}

// ListQueue lists queue rows in a state ("" for all), oldest first.
func (d *DB) ListQueue(ctx context.Context, state string, limit int) ([]store.QueueItem, error) {
	rows, err := d.R.QueryContext(ctx, d.q(`SELECT q.spool_id, q.state, q.attempts, q.reason, q.last_error, q.outcome, s.received_at, s.channel, s.size
		FROM queue q JOIN spool s ON s.id = q.spool_id WHERE (? = '' OR q.state = ?) ORDER BY q.spool_id LIMIT ?`), state, state, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.QueueItem
	for rows.Next() {
		var it store.QueueItem
		var at int64
		if err := rows.Scan(&it.SpoolID, &it.State, &it.Attempts, &it.Reason, &it.LastError, &it.Outcome, &at, &it.Channel, &it.Size); err != nil {
			return nil, err
		}
		it.ReceivedAt = FromMicros(at)
		out = append(out, it)
	}
	return out, rows.Err()
}

// QueueCounts returns the number of queue rows per state.
func (d *DB) QueueCounts(ctx context.Context) (map[string]int, error) {
	rows, err := d.R.QueryContext(ctx, `SELECT state, COUNT(*) FROM queue GROUP BY state`)
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

// Requeue selects spooled messages to run again (madoguchi reprocess): one
// id (>0), all quarantined ones, or everything received since a time. It
// returns the spool IDs of the rows made ready, or, with a worker, claimed
// by that worker for lease, so that the caller files exactly those and
// nothing else of the queue (and no other worker takes them while it
// does). Re-running never files a duplicate: File updates the report of a
// spool row that was filed before.
func (d *DB) Requeue(ctx context.Context, id int64, quarantined bool, since time.Time, worker string, lease time.Duration) ([]int64, error) {
	now := Micros(d.Now())
	state, leaseUntil, attempts := store.StateReady, int64(0), 0
	if worker != "" {
		state, leaseUntil, attempts = store.StateClaimed, now+max(lease, time.Minute).Microseconds(), 1
	}
	set := `UPDATE queue SET state = ?, attempts = ?, worker = ?, lease_until = ?, not_before = ?, updated_at = ? WHERE `
	args := []any{state, attempts, worker, leaseUntil, now, now}
	var where string
	switch {
	case id > 0:
		where, args = `spool_id = ? AND state <> ?`, append(args, id, store.StateClaimed)
	case quarantined:
		where, args = `state = ?`, append(args, store.StateQuarantined)
	default:
		where, args = `state <> ? AND spool_id IN (SELECT id FROM spool WHERE received_at >= ?)`, append(args, store.StateClaimed, Micros(since))
	}
	rows, err := d.W.QueryContext(ctx, d.q(set+where+` RETURNING spool_id`), args...)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			_ = rows.Close()
			return nil, err
		}
		ids = append(ids, v)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	slices.Sort(ids)
	if id > 0 && len(ids) == 0 {
		var c int
		if err := d.W.QueryRowContext(ctx, d.q(`SELECT COUNT(*) FROM queue WHERE spool_id = ?`), id).Scan(&c); err == nil && c == 0 {
			return nil, store.ErrNotFound
		}
	}
	return ids, nil
}
