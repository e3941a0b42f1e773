package hashed

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func argon2Hash(secret string) string { return newArgon2id(secret, 1, 8*1024, 1) }

func TestParseCheckOwner(t *testing.T) {
	bc, _ := bcrypt.GenerateFromPassword([]byte("b-secret"), bcrypt.MinCost)
	sum := sha256.Sum256([]byte("s-token"))
	content := "# comment\n\nbcr " + string(bc) + "\narg " + argon2Hash("a-secret") + "\nsha sha256:" + hex.EncodeToString(sum[:]) + "\n"
	if _, err := Parse([]byte(content), false); err == nil {
		t.Fatal("a SHA-256 line accepted where passwords are expected")
	}
	f, err := Parse([]byte(content), true)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name, secret string
		ok           bool
	}{{"bcr", "b-secret", true}, {"bcr", "a-secret", false}, {"arg", "a-secret", true}, {"arg", "b-secret", false},
		{"sha", "s-token", true}, {"sha", "s-token2", false}, {"nobody", "b-secret", false}}
	for _, c := range checks {
		if got := f.Check(c.name, c.secret); got != c.ok {
			t.Errorf("Check(%s, %s) = %v", c.name, c.secret, got)
		}
	}
	for secret, want := range map[string]string{"b-secret": "bcr", "a-secret": "arg", "s-token": "sha", "nope": "", "": ""} {
		for range 2 { // the second time from the cache
			if got := f.Owner(secret); got != want {
				t.Errorf("Owner(%q) = %q, want %q", secret, got, want)
			}
		}
	}
	for _, bad := range []string{"x", "x plain", "x $argon2id$v=19$m=x$y$z", "x sha256:abcd", "x $2a$10$short"} {
		if _, err := Parse([]byte(bad), true); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
