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
//
// A message the poller held for its size (HoldIMAPOversize) leaves the
// held list in the same transaction.
func (s *Store) SpoolIMAP(ctx context.Context, m *Message, key string, st IMAPState, uid uint32) (int64, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if id, err = s.spoolTx(ctx, tx, m, s.now()); err != nil {
			return err
		}
		if err := s.setIMAPStateTx(ctx, tx, key, st); err != nil {
			return fmt.Errorf("%w: imap state: %v", ErrUnavailable, err)
		}
		if _, err := s.exec(ctx, tx, `DELETE FROM imap_oversize WHERE mailbox_key = ? AND uidvalidity = ? AND uid = ?`,
			key, int64(st.UIDValidity), int64(uid)); err != nil {
			return fmt.Errorf("%w: imap oversize: %v", ErrUnavailable, err)
		}
		return nil
	})
	return id, err
}

// HoldIMAPOversize records that the message uid of the mailbox was left
// there for its size, spools notice (what staff see of it: a message the
// gateway writes naming the mailbox, UID, size, From and Subject) and
// advances the mailbox state past it, all in one transaction. The held
// message is never moved or flagged until SpoolIMAP takes it.
func (s *Store) HoldIMAPOversize(ctx context.Context, notice *Message, key string, st IMAPState, uid uint32, size int64) (int64, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if id, err = s.spoolTx(ctx, tx, notice, s.now()); err != nil {
			return err
		}
		if err := s.setIMAPStateTx(ctx, tx, key, st); err != nil {
			return fmt.Errorf("%w: imap state: %v", ErrUnavailable, err)
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO imap_oversize (mailbox_key, uidvalidity, uid, size, held_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (mailbox_key, uidvalidity, uid) DO NOTHING`, key, int64(st.UIDValidity), int64(uid), size, micros(s.now())); err != nil {
			return fmt.Errorf("%w: imap oversize: %v", ErrUnavailable, err)
		}
		return nil
	})
	return id, err
}

// IMAPOversize returns the UIDs of the mailbox held for their size under
// uidValidity.
func (s *Store) IMAPOversize(ctx context.Context, key string, uidValidity uint32) (map[uint32]bool, error) {
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT uid FROM imap_oversize WHERE mailbox_key = ? AND uidvalidity = ?`), key, int64(uidValidity))
	if err != nil {
		return nil, fmt.Errorf("%w: imap oversize: %v", ErrUnavailable, err)
	}
	defer rows.Close()
	out := map[uint32]bool{}
	for rows.Next() {
		var u int64
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out[uint32(u)] = true
	}
	return out, rows.Err()
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
