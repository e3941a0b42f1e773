package oauth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/store"
)

// gatedTransport holds its first request until open is closed.
type gatedTransport struct {
	once sync.Once
	read chan struct{} // closed when the first request is held
	open chan struct{}
}

func (g *gatedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	g.once.Do(func() { close(g.read); <-g.open })
	return http.DefaultTransport.RoundTrip(r)
}

// TestTwoDaemonsShareARotatingToken: two sources over one store (two
// daemons' relay clients) read the same refresh token; one rotates it
// while the other's request is on its way with the spent one. The second
// finds the rotated token in the store instead of failing.
func TestTwoDaemonsShareARotatingToken(t *testing.T) {
	ts := testenv.NewTokenServer(t, "csirt")
	s, err := stores.Open(context.Background(), stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg := Config{Account: "relay:csirt", TokenURL: ts.URL + "/token", ClientID: "madoguchi", RefreshGrant: true, Seed: ts.NewRefreshToken()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, b := NewSource(cfg, s, log, nil), NewSource(cfg, s, log, nil)
	gate := &gatedTransport{read: make(chan struct{}), open: make(chan struct{})}
	b.HTTP = &http.Client{Transport: gate}
	done := make(chan error, 1)
	go func() { _, err := b.Token(context.Background()); done <- err }()
	<-gate.read // b has read the seed and is about to spend it
	if _, err := a.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(gate.open)
	if err := <-done; err != nil {
		t.Fatalf("the second daemon: %v", err)
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
