package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/madoguchi/madoguchi/store"
	"github.com/madoguchi/madoguchi/store/internal/sqlstore"
)

// SpoolBatch spools messages (a group commit) in one autocommit statement:
// the spool rows and their queue rows are inserted together by a
// data-modifying CTE, atomic as one statement is and durable when it
// returns, where a transaction takes two round trips and two more per
// message (BEGIN, two INSERTs each, COMMIT). A batch with a message read
// from a file in chunks goes the shared way.
func (s *Store) SpoolBatch(ctx context.Context, ms []*store.Message) ([]int64, error) {
	if slices.ContainsFunc(ms, func(m *store.Message) bool { return m.Source != nil }) {
		return s.DB.SpoolBatch(ctx, ms)
	}
	now := s.Now()
	n := len(ms)
	var (
		sha, channel, from, rcpt, peer, state, worker = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		received, size, lease, attempts               = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		raw                                           = make([][]byte, n)
	)
	for i, m := range ms {
		rcpt[i] = sqlstore.PrepareSpool(m, now)
		var a int
		state[i], worker[i], lease[i], a = sqlstore.QueueRow(m, now)
		attempts[i] = int64(a)
		sha[i], channel[i], from[i], peer[i] = m.SHA256, m.Channel, m.MailFrom, m.Peer
		received[i], size[i], raw[i] = sqlstore.Micros(m.ReceivedAt), m.Size, sqlstore.NonNilBytes(m.Raw)
	}
	rows, err := s.W.QueryContext(ctx, `WITH u AS MATERIALIZED (
			SELECT u.*, nextval('spool_id_seq') AS id FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bytea[],
				$9::text[], $10::text[], $11::bigint[], $12::bigint[]) WITH ORDINALITY AS u(sha256, channel, mail_from, rcpt_to, peer, received_at, size, raw, state, worker, lease_until, attempts, n)
		), s AS (
			INSERT INTO spool (id, sha256, channel, mail_from, rcpt_to, peer, received_at, size, raw)
			SELECT id, sha256, channel, mail_from, rcpt_to, peer, received_at, size, raw FROM u
		), q AS (
			INSERT INTO queue (spool_id, state, not_before, updated_at, worker, lease_until, attempts)
			SELECT id, state, $13, $13, worker, lease_until, attempts FROM u
		)
		SELECT id FROM u ORDER BY n`,
		sha, channel, from, rcpt, peer, received, size, raw, state, worker, lease, attempts, sqlstore.Micros(now))
	if err != nil {
		return nil, fmt.Errorf("%w: spool insert: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	ids := make([]int64, 0, n)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("%w: spool insert: %v", store.ErrUnavailable, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: spool insert: %v", store.ErrUnavailable, err)
	}
	if len(ids) != n {
		return nil, fmt.Errorf("%w: spool insert: %d of %d rows", store.ErrUnavailable, len(ids), n)
	}
	for i, m := range ms {
		m.ID = ids[i]
	}
	return ids, nil
}

// Spool is SpoolBatch of one.
func (s *Store) Spool(ctx context.Context, m *store.Message) (int64, error) {
	ids, err := s.SpoolBatch(ctx, []*store.Message{m})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}
