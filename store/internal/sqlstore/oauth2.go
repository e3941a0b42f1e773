package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/madoguchi/madoguchi/store"
)

// GetOAuth2Token returns the account's refresh token; ErrNotFound when
// there is none.
func (d *DB) GetOAuth2Token(ctx context.Context, account string) (store.OAuth2Token, error) {
	var t store.OAuth2Token
	err := d.R.QueryRowContext(ctx, d.q(`SELECT refresh_token, seed_sha256 FROM oauth2_tokens WHERE account = ?`), account).Scan(&t.RefreshToken, &t.SeedSHA256)
	if errors.Is(err, sql.ErrNoRows) {
		return t, store.ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("%w: oauth2 token: %v", store.ErrUnavailable, err)
	}
	return t, nil
}

// SetOAuth2Token keeps the account's refresh token, durably: a rotated
// token lost in a crash would lock the mailbox out.
func (d *DB) SetOAuth2Token(ctx context.Context, account string, t store.OAuth2Token) error {
	return d.Tx(ctx, func(tx *sql.Tx) error {
		_, err := d.exec(ctx, tx, `INSERT INTO oauth2_tokens (account, refresh_token, seed_sha256, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (account) DO UPDATE SET refresh_token = excluded.refresh_token, seed_sha256 = excluded.seed_sha256, updated_at = excluded.updated_at`,
			account, t.RefreshToken, t.SeedSHA256, Micros(d.Now()))
		return err
	})
}
