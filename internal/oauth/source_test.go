package oauth

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/store"
)

// TestTwoDaemonsShareARotatingToken: two sources over one store (two
// daemons' relay clients) take turns with a refresh token that rotates on
// every use: each finds the other's rotated token instead of failing on
// the spent one.
func TestTwoDaemonsShareARotatingToken(t *testing.T) {
	ts := testenv.NewTokenServer(t, "csirt")
	s, err := store.Open(context.Background(), store.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg := Config{Account: "relay:csirt", TokenURL: ts.URL + "/token", ClientID: "madoguchi", RefreshGrant: true, Seed: ts.NewRefreshToken()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, b := NewSource(cfg, s, log), NewSource(cfg, s, log)
	for i := range 6 {
		src := a
		if i%2 == 1 {
			src = b
		}
		src.Invalidate()
		if _, err := src.Token(context.Background()); err != nil {
			t.Fatalf("turn %d: %v", i, err)
		}
	}
	if _, rotated := ts.Counts(); rotated != 6 {
		t.Fatalf("%d rotations, want 6", rotated)
	}
}

// TestPickAndXOAuth2: the mechanism is chosen from what is advertised,
// XOAUTH2 first; its initial response is Google's and Microsoft's format.
func TestPickAndXOAuth2(t *testing.T) {
	for _, c := range []struct {
		adv  []string
		want string
	}{{[]string{"PLAIN", "XOAUTH2"}, XOAuth2}, {[]string{"oauthbearer"}, OAuthBearer}, {[]string{"XOAUTH2", "OAUTHBEARER"}, XOAuth2}, {[]string{"PLAIN"}, ""}} {
		if got := Pick(c.adv); got != c.want {
			t.Errorf("Pick(%v) = %q, want %q", c.adv, got, c.want)
		}
	}
	c, _ := NewClient(XOAuth2, "csirt@example.org", "tok")
	mech, ir, err := c.Start()
	if err != nil || mech != "XOAUTH2" || string(ir) != "user=csirt@example.org\x01auth=Bearer tok\x01\x01" {
		t.Fatalf("%s %q %v", mech, ir, err)
	}
	if resp, err := c.Next([]byte(`{"status":"401"}`)); err != nil || len(resp) != 0 {
		t.Fatalf("answer to the error challenge: %q %v", resp, err)
	}
	if _, err := NewClient("", "u", "t"); err == nil {
		t.Fatal("no mechanism accepted")
	}
}
