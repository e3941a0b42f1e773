package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"

	"github.com/madoguchi/madoguchi/internal/hashed"
)

// Tokens verifies bearer tokens against a file of hashes, one per line:
//
//	NAME sha256:HEX       # SHA-256 of a random token (madoguchi token new)
//	NAME $2y$10$...       # or bcrypt / argon2id, for tokens people chose
//
// NAME is recorded as the actor of status changes. See internal/hashed.
type Tokens struct{ f *hashed.File }

// ParseTokens reads a token file's content.
func ParseTokens(b []byte) (*Tokens, error) {
	f, err := hashed.Parse(b, true)
	if err != nil {
		return nil, err
	}
	return &Tokens{f: f}, nil
}

// Check returns the name of the token's owner, or "" when it is not valid.
func (t *Tokens) Check(token string) string {
	if t == nil {
		return ""
	}
	return t.f.Owner(token)
}

// CheckLine is Check and the token file line that matched (for a
// session, which ends when that line is removed).
func (t *Tokens) CheckLine(token string) (name, line string) {
	if t == nil {
		return "", ""
	}
	return t.f.OwnerLine(token)
}

// LineOwner is the owner of a line CheckLine named, "" once it is gone.
func (t *Tokens) LineOwner(line string) string {
	if t == nil {
		return ""
	}
	return t.f.LineOwner(line)
}

// NewToken returns a random token and the line for the token file.
func NewToken(name string) (token, line string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token = "mdg_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, name + " sha256:" + hex.EncodeToString(sum[:])
}
