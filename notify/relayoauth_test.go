package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/madoguchi/madoguchi/internal/oauth"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/store"
)

// bearerRelay is an SMTP relay that takes bearer tokens only, checking
// them at the token server's introspection endpoint, as Microsoft's and
// Google's do at theirs.
type bearerRelay struct {
	introspect string
	mechs      []string
	mu         sync.Mutex
	used       []string // mechanisms that authenticated
	got        int      // messages taken
}

func (b *bearerRelay) valid(user, token string) bool {
	resp, err := http.PostForm(b.introspect, url.Values{"token": {token}})
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var v struct {
		Active   bool   `json:"active"`
		Username string `json:"username"`
	}
	return json.NewDecoder(resp.Body).Decode(&v) == nil && v.Active && v.Username == user
}

// seen returns the mechanisms that authenticated and the messages taken.
func (b *bearerRelay) seen() ([]string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string{}, b.used...), b.got
}

func (b *bearerRelay) NewSession(*smtp.Conn) (smtp.Session, error) { return &bearerSession{b: b}, nil }

type bearerSession struct {
	b    *bearerRelay
	user bool
}

func (s *bearerSession) AuthMechanisms() []string { return s.b.mechs }

var errBearer = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "invalid token"}

func (s *bearerSession) Auth(mech string) (sasl.Server, error) {
	ok := func(m string) { s.user = true; s.b.mu.Lock(); s.b.used = append(s.b.used, m); s.b.mu.Unlock() }
	switch mech {
	case "XOAUTH2":
		return xoauth2Server(func(user, token string) error {
			if !s.b.valid(user, token) {
				return errBearer
			}
			ok(mech)
			return nil
		}), nil
	case sasl.OAuthBearer:
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if !s.b.valid(o.Username, o.Token) {
				return &sasl.OAuthBearerError{Status: "invalid_token"}
			}
			ok(mech)
			return nil
		}), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *bearerSession) Mail(string, *smtp.MailOptions) error {
	if !s.user {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "auth first"}
	}
	return nil
}
func (s *bearerSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *bearerSession) Data(r io.Reader) error {
	_, _ = io.Copy(io.Discard, r)
	s.b.mu.Lock()
	s.b.got++
	s.b.mu.Unlock()
	return nil
}
func (s *bearerSession) Reset()        {}
func (s *bearerSession) Logout() error { return nil }

// xoauth2Server reads the XOAUTH2 initial response.
type xoauth2Server func(user, token string) error

func (f xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	var user, token string
	for _, kv := range bytes.Split(resp, []byte{1}) {
		k, v, _ := strings.Cut(string(kv), "=")
		switch k {
		case "user":
			user = v
		case "auth":
			token = strings.TrimPrefix(v, "Bearer ")
		}
	}
	if user == "" || token == "" {
		return nil, true, errors.New("bad XOAUTH2 response")
	}
	return nil, true, f(user, token)
}

// startBearerRelay runs a bearerRelay offering mechs for the test.
func startBearerRelay(t *testing.T, ts *testenv.TokenServer, mechs ...string) (*bearerRelay, string) {
	t.Helper()
	b := &bearerRelay{introspect: ts.URL + "/introspect", mechs: mechs}
	srv := smtp.NewServer(b)
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b, l.Addr().String()
}

// TestRelayOAuth2: the relay client authenticates with XOAUTH2 or
// OAUTHBEARER, as the relay offers, with client-credentials tokens; with
// a refresh token that is revoked, the rows are postponed uncounted (not
// dead letters) and go out once a new sign-in is stored.
func TestRelayOAuth2(t *testing.T) {
	ts := testenv.NewTokenServer(t, "csirt@example.org")
	for _, mechs := range [][]string{{"XOAUTH2"}, {sasl.OAuthBearer}} {
		b, addr := startBearerRelay(t, ts, mechs...)
		f := newFixture(t, nil)
		f.file(t, "a@reporter.example", "x", "en", "none")
		f.file(t, "b@reporter.example", "y", "en", "none")
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		src := oauth.NewSource(oauth.Config{Account: "relay:csirt", TokenURL: ts.URL + "/token", ClientID: "madoguchi", ClientSecret: "app-secret"}, f.s, log, nil)
		w := f.writer(&Relay{Addr: addr, TLS: "none", Username: "csirt@example.org", OAuth2: src})
		w.Keys = nil
		if _, err := w.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
		used, _ := b.seen()
		if st := f.states(t); st[store.OutboxSent] != 2 || len(used) != 2 || used[0] != mechs[0] {
			t.Fatalf("%v: outbox %v, authenticated with %v", mechs, st, used)
		}
	}

	// The refresh-token grant, revoked.
	b, addr := startBearerRelay(t, ts, "XOAUTH2")
	f := newFixture(t, nil)
	ctx := context.Background()
	_ = f.s.SetOAuth2Token(ctx, "relay:csirt", store.OAuth2Token{RefreshToken: ts.NewRefreshToken()})
	src := oauth.NewSource(oauth.Config{Account: "relay:csirt", TokenURL: ts.URL + "/token", ClientID: "madoguchi", RefreshGrant: true},
		f.s, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	w := f.writer(&Relay{Addr: addr, TLS: "none", Username: "csirt@example.org", OAuth2: src})
	w.Keys = nil
	ts.RevokeAll()
	f.file(t, "c@reporter.example", "z", "en", "none")
	for range 12 { // more passes than max_attempts
		if _, err := w.Once(ctx); err != nil {
			t.Fatal(err)
		}
		f.clock.Add(2 * time.Minute)
	}
	if st := f.states(t); st[store.OutboxPending] != 1 || st[store.OutboxDead] != 0 {
		t.Fatalf("while the credential is refused: %v, want the row pending", st)
	}
	_ = f.s.SetOAuth2Token(ctx, "relay:csirt", store.OAuth2Token{RefreshToken: ts.NewRefreshToken()})
	if _, err := w.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if _, got := b.seen(); f.states(t)[store.OutboxSent] != 1 || got != 1 {
		t.Fatalf("after a new sign-in: %v, relayed %d", f.states(t), got)
	}
}
