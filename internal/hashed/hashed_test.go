package hashed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

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
	if _, err := Parse([]byte(content), true); err == nil {
		t.Fatal("a slow-hash token line without an identifier accepted")
	}
	content = "# comment\n\nbcr " + string(bc) + " b-secr\narg " + argon2Hash("a-secret") + " a-secr\nsha sha256:" + hex.EncodeToString(sum[:]) + "\n"
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

// TestWrongTokenCostsOneHash: with many slow-hash token lines, a wrong
// token costs at most one slow hash (the line its identifier names), so
// guessing costs the guesser, not the server.
func TestWrongTokenCostsOneHash(t *testing.T) {
	var b strings.Builder
	for i := range 20 {
		h, _ := bcrypt.GenerateFromPassword([]byte(fmt.Sprintf("tok%03d-secret", i)), 10)
		fmt.Fprintf(&b, "user%d %s tok%03d\n", i, h, i)
	}
	f, err := Parse([]byte(b.String()), true)
	if err != nil {
		t.Fatal(err)
	}
	one := time.Now()
	if f.Owner("tok007-wrong") != "" {
		t.Fatal("a wrong token accepted")
	}
	perHash := time.Since(one)
	start := time.Now()
	for range 5 {
		if f.Owner("completely-unknown-token") != "" || f.Owner("tok013-also-wrong") != "" {
			t.Fatal("a wrong token accepted")
		}
	}
	// Five wrong tokens naming a line (a hash each) and five naming none
	// (no hash): nowhere near the 200 hashes a scan of the lines costs.
	if d := time.Since(start); d > 10*perHash+200*time.Millisecond {
		t.Fatalf("ten wrong tokens took %v (one hash: %v)", d, perHash)
	}
	if f.Owner("tok013-secret") != "user13" {
		t.Fatal("the right token refused")
	}
	for _, bad := range []string{"u $2a$10$" + strings.Repeat("a", 53) + " ab", "u sha256:" + strings.Repeat("0", 64) + " x y"} {
		if _, err := Parse([]byte(bad), true); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestOwnerLine: the line a token matched is found again by its name in a
// reload of the same file, and not once the line is removed.
func TestOwnerLine(t *testing.T) {
	sum := sha256.Sum256([]byte("mdg_secret-token"))
	slow := NewArgon2id("bobs-long-token-value")
	file := "alice sha256:" + hex.EncodeToString(sum[:]) + "\nbob " + slow + " bobs-long\n"
	f, err := Parse([]byte(file), true)
	if err != nil {
		t.Fatal(err)
	}
	name, line := f.OwnerLine("mdg_secret-token")
	bname, bline := f.OwnerLine("bobs-long-token-value")
	if name != "alice" || !strings.HasPrefix(line, "sha256:") || bname != "bob" || bline != "id:bobs-long" {
		t.Fatalf("%s %s / %s %s", name, line, bname, bline)
	}
	if n, l := f.OwnerLine("wrong"); n != "" || l != "" {
		t.Fatalf("wrong token: %q %q", n, l)
	}
	again, _ := Parse([]byte(file), true)
	if again.LineOwner(line) != "alice" || again.LineOwner(bline) != "bob" {
		t.Fatal("lines not found after a reload")
	}
	revoked, _ := Parse([]byte("bob "+slow+" bobs-long\n"), true)
	if revoked.LineOwner(line) != "" || revoked.LineOwner("nonsense") != "" {
		t.Fatal("a removed line still has an owner")
	}
}
