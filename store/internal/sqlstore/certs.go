package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/store"
)

// SaveCertificate implements store.Store.
func (d *DB) SaveCertificate(ctx context.Context, email string, der []byte, sha256 string, notAfter time.Time) (bool, error) {
	var changed bool
	err := d.Tx(ctx, func(tx *sql.Tx) error {
		res, err := d.exec(ctx, tx, `INSERT INTO smime_certs (email, sha256, der, not_after, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (email) DO UPDATE SET sha256 = excluded.sha256, der = excluded.der, not_after = excluded.not_after, updated_at = excluded.updated_at
			WHERE smime_certs.sha256 <> excluded.sha256 AND excluded.not_after >= smime_certs.not_after`,
			strings.ToLower(email), sha256, der, Micros(notAfter), Micros(d.Now()))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		changed = n > 0
		return err
	})
	return changed, err
}

// Certificate implements store.Store.
func (d *DB) Certificate(ctx context.Context, email string) ([]byte, error) {
	var der []byte
	err := d.R.QueryRowContext(ctx, d.q(`SELECT der FROM smime_certs WHERE email = ?`), strings.ToLower(email)).Scan(&der)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return der, err
}
