package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/madoguchi/madoguchi/store"
)

// GetIMAPState returns the state of the mailbox key (zero if never polled).
func (d *DB) GetIMAPState(ctx context.Context, key string) (store.IMAPState, error) {
	var st store.IMAPState
	var v, u int64
	err := d.R.QueryRowContext(ctx, d.q(`SELECT uidvalidity, last_uid FROM imap_state WHERE mailbox_key = ?`), key).Scan(&v, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("%w: imap state: %v", store.ErrUnavailable, err)
	}
	return store.IMAPState{UIDValidity: uint32(v), LastUID: uint32(u)}, nil
}

func (d *DB) setIMAPStateTx(ctx context.Context, tx *sql.Tx, key string, st store.IMAPState) error {
	_, err := d.exec(ctx, tx, `INSERT INTO imap_state (mailbox_key, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (mailbox_key) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, updated_at = excluded.updated_at`,
		key, int64(st.UIDValidity), int64(st.LastUID), Micros(d.Now()))
	return err
}

// SetIMAPState records the state of a mailbox (after a UIDVALIDITY change).
func (d *DB) SetIMAPState(ctx context.Context, key string, st store.IMAPState) error {
	return d.Tx(ctx, func(tx *sql.Tx) error { return d.setIMAPStateTx(ctx, tx, key, st) })
}

// SpoolIMAP spools a message fetched from a mailbox and advances the
// mailbox's last UID in the same transaction: after a crash the poller
// neither skips the message nor spools it a second time.
//
// A message the poller held for its size (HoldIMAPOversize) leaves the
// held list in the same transaction.
func (d *DB) SpoolIMAP(ctx context.Context, m *store.Message, key string, st store.IMAPState, uid uint32) (int64, error) {
	var id int64
	err := d.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		if id, err = d.spoolTx(ctx, tx, m, d.Now()); err != nil {
			return err
		}
		if err := d.setIMAPStateTx(ctx, tx, key, st); err != nil {
			return fmt.Errorf("%w: imap state: %v", store.ErrUnavailable, err)
		}
		if _, err := d.exec(ctx, tx, `DELETE FROM imap_oversize WHERE mailbox_key = ? AND uidvalidity = ? AND uid = ?`,
			key, int64(st.UIDValidity), int64(uid)); err != nil {
			return fmt.Errorf("%w: imap oversize: %v", store.ErrUnavailable, err)
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
func (d *DB) HoldIMAPOversize(ctx context.Context, notice *store.Message, key string, st store.IMAPState, uid uint32, size int64) (int64, error) {
	var id int64
	err := d.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		if id, err = d.spoolTx(ctx, tx, notice, d.Now()); err != nil {
			return err
		}
		if err := d.setIMAPStateTx(ctx, tx, key, st); err != nil {
			return fmt.Errorf("%w: imap state: %v", store.ErrUnavailable, err)
		}
		if _, err := d.exec(ctx, tx, `INSERT INTO imap_oversize (mailbox_key, uidvalidity, uid, size, held_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (mailbox_key, uidvalidity, uid) DO NOTHING`, key, int64(st.UIDValidity), int64(uid), size, Micros(d.Now())); err != nil {
			return fmt.Errorf("%w: imap oversize: %v", store.ErrUnavailable, err)
		}
		return nil
	})
	return id, err
}

// IMAPOversize returns the UIDs of the mailbox held for their size under
// uidValidity.
func (d *DB) IMAPOversize(ctx context.Context, key string, uidValidity uint32) (map[uint32]bool, error) {
	rows, err := d.R.QueryContext(ctx, d.q(`SELECT uid FROM imap_oversize WHERE mailbox_key = ? AND uidvalidity = ?`), key, int64(uidValidity))
	if err != nil {
		return nil, fmt.Errorf("%w: imap oversize: %v", store.ErrUnavailable, err)
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
