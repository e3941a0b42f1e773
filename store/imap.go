package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
)

// IMAPState is what a poller remembers of one mailbox: the UIDVALIDITY it
// saw and the highest UID it has spooled under it.
type IMAPState struct {
	UIDValidity uint32
	LastUID     uint32
}

// GetIMAPState returns the state of the mailbox key (zero if never polled).
func (s *Store) GetIMAPState(ctx context.Context, key string) (IMAPState, error) {
	var st IMAPState
	var v, u int64
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT uidvalidity, last_uid FROM imap_state WHERE mailbox_key = ?`), key).Scan(&v, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("%w: imap state: %v", ErrUnavailable, err)
	}
	return IMAPState{UIDValidity: uint32(v), LastUID: uint32(u)}, nil
}

func (s *Store) setIMAPStateTx(ctx context.Context, tx *sql.Tx, key string, st IMAPState) error {
	_, err := s.exec(ctx, tx, `INSERT INTO imap_state (mailbox_key, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (mailbox_key) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, updated_at = excluded.updated_at`,
		key, int64(st.UIDValidity), int64(st.LastUID), micros(s.now()))
	return err
}

// SetIMAPState records the state of a mailbox (after a UIDVALIDITY change).
func (s *Store) SetIMAPState(ctx context.Context, key string, st IMAPState) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.setIMAPStateTx(ctx, tx, key, st) })
}

// SpoolIMAP spools a message fetched from a mailbox and advances the
// mailbox's last UID in the same transaction: after a crash the poller
// neither skips the message nor spools it a second time.
func (s *Store) SpoolIMAP(ctx context.Context, m *Message, key string, st IMAPState) (int64, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if id, err = s.spoolTx(ctx, tx, m, s.now()); err != nil {
			return err
		}
		if err := s.setIMAPStateTx(ctx, tx, key, st); err != nil {
			return fmt.Errorf("%w: imap state: %v", ErrUnavailable, err)
		}
		return nil
	})
	return id, err
}

// localLocks keeps two pollers of one process off one mailbox on SQLite,
// where a store belongs to one process.
var localLocks sync.Map

// LockMailbox takes the right to poll the mailbox key, without waiting. On
// PostgreSQL it is a session advisory lock held on a connection of its own:
// when the daemon holding it dies, its connection closes, the lock is
// released, and another daemon's next try takes over. ok is false when
// another holds it. release gives it back.
func (s *Store) LockMailbox(ctx context.Context, key string) (release func(), ok bool, err error) {
	if s.driver != Postgres {
		lk := s.dsn + "\x00" + key
		if _, loaded := localLocks.LoadOrStore(lk, true); loaded {
			return nil, false, nil
		}
		return func() { localLocks.Delete(lk) }, true, nil
	}
	h := fnv.New64a()
	h.Write([]byte("madoguchi imap " + key))
	lockID := int64(h.Sum64() >> 1)
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("%w: lock mailbox: %v", ErrUnavailable, err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, lockID).Scan(&ok); err != nil {
		_ = conn.Close()
		return nil, false, fmt.Errorf("%w: lock mailbox: %v", ErrUnavailable, err)
	}
	if !ok {
		_ = conn.Close()
		return nil, false, nil
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, lockID)
		_ = conn.Close()
	}, true, nil
}
