package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// OAuth2Token is an account's refresh token as the store keeps it.
type OAuth2Token struct {
	RefreshToken string
	SeedSHA256   string // of the refresh_token_file it was seeded from
}

// GetOAuth2Token returns the account's refresh token; ErrNotFound when
// there is none.
func (s *Store) GetOAuth2Token(ctx context.Context, account string) (OAuth2Token, error) {
	var t OAuth2Token
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT refresh_token, seed_sha256 FROM oauth2_tokens WHERE account = ?`), account).Scan(&t.RefreshToken, &t.SeedSHA256)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("%w: oauth2 token: %v", ErrUnavailable, err)
	}
	return t, nil
}

// SetOAuth2Token keeps the account's refresh token, durably: a rotated
// token lost in a crash would lock the mailbox out.
func (s *Store) SetOAuth2Token(ctx context.Context, account string, t OAuth2Token) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, `INSERT INTO oauth2_tokens (account, refresh_token, seed_sha256, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (account) DO UPDATE SET refresh_token = excluded.refresh_token, seed_sha256 = excluded.seed_sha256, updated_at = excluded.updated_at`,
			account, t.RefreshToken, t.SeedSHA256, micros(s.now()))
		return err
	})
}
