package store

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
	"strings"
	"time"
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

// queueRow is the state, worker, lease and attempts a new queue row
// starts with.
func queueRow(m *Message, now time.Time) (state, worker string, leaseUntil int64, attempts int) {
	if m.ClaimedBy == "" {
		return StateReady, "", 0, 0
	}
	return StateClaimed, m.ClaimedBy, micros(now.Add(max(m.Lease, time.Minute))), 1
}

// ChunkSize is the size of one spool chunk.
const ChunkSize = 1 << 20

// Spool commits a message and its queue row. It is the acceptance point:
// nil means durable.
func (s *Store) Spool(ctx context.Context, m *Message) (int64, error) {
	ids, err := s.SpoolBatch(ctx, []*Message{m})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// SpoolBatch commits several messages in one transaction (group commit): one
// durable commit covers them all, and none is durable before it.
func (s *Store) SpoolBatch(ctx context.Context, ms []*Message) ([]int64, error) {
	ids, err := s.spoolBatch(ctx, ms)
	if err == nil {
		err = s.durable()
	}
	return ids, err
}

// spoolBatch commits ms in one transaction; on SQLite the commit is durable
// only after a syncWAL (the group committer's syncer takes that after it
// has let the connection go, for several batches at once).
func (s *Store) spoolBatch(ctx context.Context, ms []*Message) ([]int64, error) {
	now := s.now()
	if s.driver == Postgres && len(ms) == 1 && ms[0].Source == nil {
		id, err := s.spoolOnePostgres(ctx, ms[0], now)
		return []int64{id}, err
	}
	ids := make([]int64, len(ms))
	err := s.commitTx(ctx, true, func(tx *sql.Tx) error {
		for i, m := range ms {
			id, err := s.spoolTx(ctx, tx, m, now)
			if err != nil {
				return err
			}
			ids[i] = id
		}
		return nil
	})
	return ids, err
}

// spoolOnePostgres spools a lone message with one statement in autocommit:
// the spool row and its queue row are inserted together by a data-modifying
// CTE, atomic as one statement is, and durable when it returns
// (synchronous_commit on). One round trip instead of four (BEGIN, two
// INSERTs, COMMIT): with one SMTP client each message is a lone commit,
// and the round trips were a third of its 250's wait.
func (s *Store) spoolOnePostgres(ctx context.Context, m *Message, now time.Time) (int64, error) {
	rcpt := prepareSpool(m, now)
	state, worker, lease, attempts := queueRow(m, now)
	var id int64
	err := s.db.QueryRowContext(ctx, `WITH s AS (
			INSERT INTO spool (sha256, channel, mail_from, rcpt_to, peer, received_at, size, raw)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id)
		INSERT INTO queue (spool_id, state, not_before, updated_at, worker, lease_until, attempts) SELECT id, $9, $10, $10, $11, $12, $13 FROM s RETURNING spool_id`,
		m.SHA256, m.Channel, m.MailFrom, rcpt, m.Peer, micros(m.ReceivedAt), m.Size, nonNilBytes(m.Raw), state, micros(now), worker, lease, attempts).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("%w: spool insert: %v", ErrUnavailable, err)
	}
	m.ID = id
	return id, nil
}

// prepareSpool fills in what the spool row records about m (hash, size,
// received time) and returns its recipients as JSON.
func prepareSpool(m *Message, now time.Time) string {
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

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// spoolTx inserts one message and its queue row inside tx.
func (s *Store) spoolTx(ctx context.Context, tx *sql.Tx, m *Message, now time.Time) (int64, error) {
	raw := nonNilBytes(m.Raw)
	rcpt := prepareSpool(m, now)
	var id int64
	err := s.queryRow(ctx, tx, `INSERT INTO spool (sha256, channel, mail_from, rcpt_to, peer, received_at, size, raw)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		m.SHA256, m.Channel, m.MailFrom, rcpt, m.Peer, micros(m.ReceivedAt), m.Size, raw).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("%w: spool insert: %v", ErrUnavailable, err)
	}
	if m.Source != nil {
		if err := s.spoolChunks(ctx, tx, id, m); err != nil {
			return 0, err
		}
	}
	state, worker, lease, attempts := queueRow(m, now)
	if _, err := s.exec(ctx, tx, `INSERT INTO queue (spool_id, state, not_before, updated_at, worker, lease_until, attempts) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		id, state, micros(now), micros(now), worker, lease, attempts); err != nil {
		return 0, fmt.Errorf("%w: queue insert: %v", ErrUnavailable, err)
	}
	m.ID = id
	return id, nil
}

// spoolChunks copies m.Source into spool_chunks, hashing as it goes, and
// records the size and SHA-256 of the whole on the spool row.
func (s *Store) spoolChunks(ctx context.Context, tx *sql.Tx, id int64, m *Message) error {
	if _, err := m.Source.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool source: %w", err)
	}
	h := sha256.New()
	buf := make([]byte, ChunkSize)
	var size int64
	for seq := 0; ; seq++ {
		n, err := io.ReadFull(m.Source, buf)
		if n > 0 {
			h.Write(buf[:n])
			size += int64(n)
			if _, err := s.exec(ctx, tx, `INSERT INTO spool_chunks (spool_id, seq, data) VALUES (?, ?, ?)`, id, seq, buf[:n]); err != nil {
				return fmt.Errorf("%w: spool chunk: %v", ErrUnavailable, err)
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
	_, err := s.exec(ctx, tx, `UPDATE spool SET sha256 = ?, size = ? WHERE id = ?`, m.SHA256, size, id)
	return err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetMessage loads one spooled message.
func (s *Store) GetMessage(ctx context.Context, id int64) (*Message, error) {
	m, err := scanMessage(s.rdb.QueryRowContext(ctx, s.q(`SELECT `+messageColumns+` FROM spool WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if len(m.Raw) == 0 && m.Size > 0 {
		// A chunked message: the pipeline needs it whole to parse it.
		rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT data FROM spool_chunks WHERE spool_id = ? ORDER BY seq`), id)
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

// messageColumns are the spool columns scanMessage reads.
const messageColumns = `id, sha256, channel, mail_from, rcpt_to, peer, received_at, size, raw`

// scanMessage reads one spool row of messageColumns, after the columns
// read into before (if any).
func scanMessage(row interface{ Scan(...any) error }, before ...any) (*Message, error) {
	var m Message
	var rcpt string
	var at int64
	if err := row.Scan(append(before, &m.ID, &m.SHA256, &m.Channel, &m.MailFrom, &rcpt, &m.Peer, &at, &m.Size, &m.Raw)...); err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(rcpt), &m.RcptTo)
	m.ReceivedAt = fromMicros(at)
	return &m, nil
}

// A row whose workers all stopped while processing it (Claim,
// ClaimMessages) is quarantined with these.
const (
	reasonCrashed = "crashed"
	detailCrashed = "the worker stopped while processing it on every attempt"
)

// Claim is a leased queue row.
type Claim struct {
	SpoolID  int64
	Attempts int // including this one
}

// Claim leases up to n ready (or lease-expired) queue rows for worker. Rows
// whose attempts would exceed maxAttempts are quarantined ("crashed": a
// worker died on them each time) instead of returned.
func (s *Store) Claim(ctx context.Context, worker string, n int, lease time.Duration, maxAttempts int) ([]Claim, error) {
	now := micros(s.now())
	skip := ""
	if s.driver == Postgres {
		skip = " FOR UPDATE SKIP LOCKED"
	}
	var out []Claim
	err := s.lazyTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.query(ctx, tx, claimQueueSQL(skip),
			StateClaimed, now+lease.Microseconds(), worker, now, now, now, n, now, n)
		if err != nil {
			return err
		}
		var over []int64
		for rows.Next() {
			var c Claim
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
		slices.SortFunc(out, func(a, b Claim) int { return cmp.Compare(a.SpoolID, b.SpoolID) })
		for _, id := range over {
			if _, err := s.exec(ctx, tx, `UPDATE queue SET state = ?, reason = ?, last_error = ?, updated_at = ? WHERE spool_id = ?`,
				StateQuarantined, reasonCrashed, detailCrashed, now, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: claim: %v", ErrUnavailable, err)
	}
	return out, nil
}

// ClaimMessages is Claim followed by GetMessage for each claimed row: the
// claimed rows (oldest first) and their messages. On PostgreSQL it is one
// autocommit statement, lazily committed like Claim's transaction, where
// Claim and the reads took four round trips and one per message (begin,
// the lazy setting, the claim, commit, the reads); a row past maxAttempts
// is quarantined by a second statement, as Claim does. A message that
// cannot be read is nil.
func (s *Store) ClaimMessages(ctx context.Context, worker string, n int, lease time.Duration, maxAttempts int) ([]Claim, []*Message, error) {
	if s.driver != Postgres {
		cl, err := s.Claim(ctx, worker, n, lease, maxAttempts)
		if err != nil || len(cl) == 0 {
			return nil, nil, err
		}
		msgs := make([]*Message, len(cl))
		for i, c := range cl {
			m, err := s.GetMessage(ctx, c.SpoolID)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return nil, nil, err
			}
			msgs[i] = m
		}
		return cl, msgs, nil
	}
	now := micros(s.now())
	rows, err := s.db.QueryContext(ctx, s.q(`WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true)), c AS (`+claimQueueSQL(" FOR UPDATE SKIP LOCKED")+`)
		SELECT c.attempts, `+prefixed("s.", messageColumns)+` FROM lazy, c JOIN spool s ON s.id = c.spool_id`),
		StateClaimed, now+lease.Microseconds(), worker, now, now, now, n, now, n)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: claim: %v", ErrUnavailable, err)
	}
	defer rows.Close()
	type claimed struct {
		c Claim
		m *Message
	}
	var got []claimed
	var over []int64
	for rows.Next() {
		var attempts int
		m, err := scanMessage(rows, &attempts)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: claim: %v", ErrUnavailable, err)
		}
		if attempts > maxAttempts {
			over = append(over, m.ID)
			continue
		}
		got = append(got, claimed{Claim{SpoolID: m.ID, Attempts: attempts}, m})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: claim: %v", ErrUnavailable, err)
	}
	rows.Close()
	if len(over) > 0 {
		if _, err := s.db.ExecContext(ctx, `UPDATE queue SET state = $1, reason = $2, last_error = $3, updated_at = $4 WHERE spool_id = ANY($5)`,
			StateQuarantined, reasonCrashed, detailCrashed, now, over); err != nil {
			return nil, nil, fmt.Errorf("%w: claim: %v", ErrUnavailable, err)
		}
	}
	// Oldest first, as the batch is filed in this order (a reply after
	// what it replies to): RETURNING keeps no order of its own.
	slices.SortFunc(got, func(a, b claimed) int { return cmp.Compare(a.c.SpoolID, b.c.SpoolID) })
	cl := make([]Claim, len(got))
	msgs := make([]*Message, len(got))
	for i, g := range got {
		cl[i], msgs[i] = g.c, g.m
		if len(g.m.Raw) == 0 && g.m.Size > 0 { // chunked: read whole
			if msgs[i], err = s.GetMessage(ctx, g.m.ID); err != nil {
				msgs[i] = nil
			}
		}
	}
	return cl, msgs, nil
}

// prefixed qualifies each of the comma-separated columns with p.
func prefixed(p, columns string) string {
	cols := strings.Split(columns, ", ")
	for i, c := range cols {
		cols[i] = p + c
	}
	return strings.Join(cols, ", ")
}

// claimQueueSQL leases the oldest ready rows and rows whose lease ran out:
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
func claimQueueSQL(skip string) string {
	return `UPDATE queue SET state = ?, lease_until = ?, worker = ?, attempts = attempts + 1, updated_at = ?
		WHERE spool_id IN (SELECT spool_id FROM (
			SELECT spool_id FROM (SELECT spool_id FROM queue WHERE state = '` + StateReady + `' AND not_before <= ?
				AND NOT EXISTS (SELECT 1 FROM queue x WHERE x.state = '` + StateClaimed + `' AND x.lease_until <= ?)
				ORDER BY spool_id LIMIT ?` + skip + `) AS r
			UNION ALL
			SELECT spool_id FROM (SELECT spool_id FROM queue WHERE state = '` + StateClaimed + `' AND lease_until <= ? ORDER BY lease_until, spool_id LIMIT 1` + skip + `) AS e
		) AS c ORDER BY spool_id LIMIT ?)
		RETURNING spool_id, attempts`
}

// Release hands claimed rows back to the queue untouched (ready at once,
// the attempt not counted): a worker that claimed more bytes than it
// files in one go gives back the rest.
func (s *Store) Release(ctx context.Context, worker string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	now := micros(s.now())
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := s.exec(ctx, tx, `UPDATE queue SET state = ?, attempts = attempts - 1, worker = '', lease_until = 0, not_before = ?, updated_at = ?
				WHERE spool_id = ? AND state = ? AND worker = ?`, StateReady, now, now, id, StateClaimed, worker); err != nil {
				return err
			}
		}
		return nil
	})
}

// Fail records a failed attempt. Before maxAttempts the row returns to ready
// after an exponential back-off; at maxAttempts it is quarantined with the
// reason code, never retried on its own and never blocking others.
func (s *Store) Fail(ctx context.Context, spoolID int64, reason, detail string, maxAttempts int) (quarantined bool, err error) {
	now := s.now()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var attempts int
		if err := s.queryRow(ctx, tx, `SELECT attempts FROM queue WHERE spool_id = ?`, spoolID).Scan(&attempts); err != nil {
			return err
		}
		state := StateReady
		if attempts >= maxAttempts {
			state = StateQuarantined
			quarantined = true
		}
		backoff := time.Duration(1<<min(attempts, 10)) * time.Second
		_, err := s.exec(ctx, tx, `UPDATE queue SET state = ?, reason = ?, last_error = ?, not_before = ?, lease_until = 0, updated_at = ? WHERE spool_id = ?`,
			state, reason, detail, micros(now.Add(backoff)), micros(now), spoolID)
		return err
	})
	return quarantined, err
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

// ListQueue lists queue rows in a state ("" for all), oldest first.
func (s *Store) ListQueue(ctx context.Context, state string, limit int) ([]QueueItem, error) {
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT q.spool_id, q.state, q.attempts, q.reason, q.last_error, q.outcome, s.received_at, s.channel, s.size
		FROM queue q JOIN spool s ON s.id = q.spool_id WHERE (? = '' OR q.state = ?) ORDER BY q.spool_id LIMIT ?`), state, state, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []QueueItem
	for rows.Next() {
		var it QueueItem
		var at int64
		if err := rows.Scan(&it.SpoolID, &it.State, &it.Attempts, &it.Reason, &it.LastError, &it.Outcome, &at, &it.Channel, &it.Size); err != nil {
			return nil, err
		}
		it.ReceivedAt = fromMicros(at)
		out = append(out, it)
	}
	return out, rows.Err()
}

// QueueCounts returns the number of queue rows per state.
func (s *Store) QueueCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT state, COUNT(*) FROM queue GROUP BY state`)
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
func (s *Store) Requeue(ctx context.Context, id int64, quarantined bool, since time.Time, worker string, lease time.Duration) ([]int64, error) {
	now := micros(s.now())
	state, leaseUntil, attempts := StateReady, int64(0), 0
	if worker != "" {
		state, leaseUntil, attempts = StateClaimed, now+max(lease, time.Minute).Microseconds(), 1
	}
	set := `UPDATE queue SET state = ?, attempts = ?, worker = ?, lease_until = ?, not_before = ?, updated_at = ? WHERE `
	args := []any{state, attempts, worker, leaseUntil, now, now}
	var where string
	switch {
	case id > 0:
		where, args = `spool_id = ? AND state <> ?`, append(args, id, StateClaimed)
	case quarantined:
		where, args = `state = ?`, append(args, StateQuarantined)
	default:
		where, args = `state <> ? AND spool_id IN (SELECT id FROM spool WHERE received_at >= ?)`, append(args, StateClaimed, micros(since))
	}
	rows, err := s.db.QueryContext(ctx, s.q(set+where+` RETURNING spool_id`), args...)
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
	if err := s.durable(); err != nil { // an operator's request: durable when it returns
		return nil, err
	}
	slices.Sort(ids)
	if id > 0 && len(ids) == 0 {
		var c int
		if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM queue WHERE spool_id = ?`), id).Scan(&c); err == nil && c == 0 {
			return nil, ErrNotFound
		}
	}
	return ids, nil
}
